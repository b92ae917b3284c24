"""Value rules for config keys: a type, and for numbers a range (or a set of choices).

A :class:`Rule` checks one resolved value and says what is wrong in words a user can act on. The
rules themselves, by key, are in ``kd.jobs.schema``; ``kd.jobs.validate`` applies them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
         "list": "a list", "dict": "a mapping", "any": "any value", "file": "an existing file"}
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: a zip archive (or, before torch 1.6, a pickle)


@dataclass(frozen=True)
class Rule:
    """What a config value may be.

    Args:
        kind: ``int``, ``float`` (ints allowed), ``bool``, ``str``, ``list``, ``dict`` or ``any``, or a
            tuple of them (any one fits).
        null: whether null is allowed.
        gt, ge, lt, le: bounds for numbers (and for each item of a list of numbers).
        choices: the allowed values (any kind).
        items: the rule for each item of a list.
        magic: for ``file``: the bytes such a file starts with (any one of them; these are a checkpoint's).
        help: what the key means, added to the message.
    """

    kind: str | tuple[str, ...]
    null: bool = False
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    items: Rule | None = None
    magic: tuple[bytes, ...] = ()
    help: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule, or None."""
        if value is None:
            return None if self.null else f"must not be null; {self.allowed()}"
        if self.choices is not None:
            return None if _in(value, self.choices) else f"choose {self.allowed()}"
        if not _has_kind(value, self.kind):
            return f"must be {self.allowed()}"
        if self.kind in ("int", "float"):
            return self._range_problem(value)
        if self.kind == "file" and self.magic:
            with open(value, "rb") as handle:
                start = handle.read(8)
            return None if start.startswith(self.magic) else "is not a PyTorch checkpoint (a file written by torch.save)"
        if self.kind == "list" and self.items is not None:
            for i, item in enumerate(value):
                if (problem := self.items.problem(item)) is not None:
                    return f"item {i} ({item!r}) {problem}"
        return None

    def _range_problem(self, value: float) -> str | None:
        if isinstance(value, float) and math.isnan(value):
            return f"must be {self.allowed()}, not nan"
        broken = ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                  or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le))
        return f"must be {self.allowed()}" if broken else None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``a number > 0``, ``an integer >= 1, or null``."""
        if self.choices is not None:
            text = f"one of {', '.join(dict.fromkeys(map(_show, self.choices)))}"
        else:
            bounds = [f"{op} {_show(b)}" for op, b in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                      if b is not None]
            kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
            text = " or ".join(KINDS[k] for k in kinds) + (" " + " and ".join(bounds) if bounds else "")
            if self.items is not None:
                text += f" of {self.items.allowed()}"
        return text + (", or null" if self.null else "")


def _has_kind(value: Any, kind: str | tuple[str, ...]) -> bool:
    if isinstance(kind, tuple):
        return any(_has_kind(value, k) for k in kind)
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "file":
        return isinstance(value, str) and Path(value).is_file()
    if kind == "list":
        return isinstance(value, Sequence) and not isinstance(value, str)
    return isinstance(value, Mapping)


def _in(value: Any, choices: tuple[Any, ...]) -> bool:
    return any(value == c and type(value) is type(c) for c in choices)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def Int(ge: float | None = None, *, gt: float | None = None, le: float | None = None, null: bool = False,
        help: str = "") -> Rule:
    """An integer (optionally bounded)."""
    return Rule("int", null=null, gt=gt, ge=ge, le=le, help=help)


def Float(*, gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None,
          null: bool = False, help: str = "") -> Rule:
    """A number (ints allowed; optionally bounded)."""
    return Rule("float", null=null, gt=gt, ge=ge, lt=lt, le=le, help=help)


def Share(help: str = "", null: bool = False) -> Rule:
    """A number between 0 and 1."""
    return Rule("float", ge=0, le=1, null=null, help=help)


def Bool(null: bool = False, help: str = "") -> Rule:
    return Rule("bool", null=null, help=help)


def Str(null: bool = False, help: str = "") -> Rule:
    return Rule("str", null=null, help=help)


def Choice(*choices: Any, help: str = "") -> Rule:
    """One of ``choices`` (None among them allows null)."""
    return Rule("any", null=None in choices, choices=tuple(c for c in choices if c is not None), help=help)


def ListOf(item: Rule, null: bool = False, help: str = "") -> Rule:
    return Rule("list", null=null, items=item, help=help)


def Table(null: bool = False, help: str = "") -> Rule:
    """A mapping whose content is not checked key by key (e.g. tap aliases -> module paths)."""
    return Rule("dict", null=null, help=help)


def Checkpoint(null: bool = False, help: str = "") -> Rule:
    """An existing file written by ``torch.save``."""
    return Rule("file", null=null, magic=CHECKPOINT_MAGIC, help=help)
