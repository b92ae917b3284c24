"""Type annotations of a callable's parameters, used as checks of the config values passed to them."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def parameter_annotation(target: Callable[..., Any] | None, name: str) -> Any:
    """The type annotation of ``target``'s parameter ``name`` (None when there is none or it is unknown)."""
    if target is None:
        return None
    function = target.__init__ if inspect.isclass(target) else target
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable forward references: no annotation to use
        return None
    return hints.get(name)


def annotation_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation``; None if it fits or the annotation cannot be checked."""
    return None if _fits(value, annotation) is not False else f"must be {_describe(annotation)}"


def _fits(value: Any, annotation: Any) -> bool | None:
    """True/False where the annotation can be checked, None where it cannot (objects, tensors)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        results = [_fits(value, a) for a in args]
        return True if any(r is True for r in results) else (None if None in results else False)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str or annotation is Path:
        return isinstance(value, str)
    base = origin or annotation
    if base in (list, tuple, Sequence) or (inspect.isclass(base) and issubclass(base, Sequence) and base is not str):
        return isinstance(value, list | tuple)
    if base in (dict, Mapping):
        return isinstance(value, Mapping)
    return None


def _describe(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def checkable(annotation: Any) -> bool:
    """Whether :func:`annotation_problem` can say anything about this annotation."""
    return annotation is not None and _fits(object(), annotation) is not None
