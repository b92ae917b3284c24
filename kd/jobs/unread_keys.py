"""Keys that nothing reads: ``+loss.temprature=2`` or ``+sede=3``, added with ``+`` (Hydra accepts a new
key), would otherwise be ignored while the run trains with the default; ``+trainer.max_epoch=3`` would
fail only when the trainer is built, after the teacher stage.

A key that another value refers to (``${...}``) is read. Otherwise an argument of a ``_target_`` is read
when the callable takes it, by name or through ``**kwargs`` (``optim.optimizer.betas`` has a rule, for
AdamW, but SGD takes no ``betas``); the keys inside a mapping that the callable takes are left to it;
any other key is read when a rule in ``kd.config.schema`` covers it. Every key of kd's
own configs is read (``tests/test_configs.py``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kd.config.schema import RULES
from kd.jobs.override_hints import closest_keys


def unread_keys(cfg: DictConfig, keys: Iterable[str], untyped: set[str], mentioned: set[str],
                target_of: Callable[[str], Callable[..., Any] | None]) -> dict[str, str]:
    """``{key: why nothing reads it, with the keys it may have meant}`` for the leaves of ``keys`` that no
    value mentions: an argument that its ``_target_`` does not take (keyed by the argument, which may hold
    the leaf), or a key of ``untyped`` (no rule and no annotation types it) outside every ``_target_``.
    ``target_of(key)`` is the callable of the ``_target_`` at ``key``."""
    found = {}
    for key in keys:
        if key in mentioned or any(key.startswith(f"{m}.") for m in mentioned):
            continue
        owner = next((a for a in _ancestors(key.rpartition(".")[0]) if _has_target(cfg, a)), None)
        if owner is not None:  # an argument of the callable at ``owner``, or inside one
            name = key.removeprefix(f"{owner}.").split(".")[0]
            target = target_of(owner)
            if target is None or _takes(target, name):
                continue
            names = _parameters(target)
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            what = f"{getattr(target, '__qualname__', target)} takes no argument '{name}'"
            found[f"{owner}.{name}"] = f"{what}; did you mean {' or '.join(close)}?" if close else f"{what}; it takes {', '.join(names)}"
        elif key in untyped:
            close = _closest(key, _config_keys(cfg)) or _closest(key, [k for k in RULES if "*" not in k])
            found[key] = "kd reads no such key" + (f"; did you mean {' or '.join(close)}?" if close else
                                                  " (`python -m kd.run --help` lists the groups and keys)")
    return found


def _ancestors(key: str) -> list[str]:
    parts = key.split(".") if key else []
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _has_target(cfg: DictConfig, key: str) -> bool:
    node = OmegaConf.select(cfg, key, throw_on_missing=False, throw_on_resolution_failure=False) if key else cfg
    return isinstance(node, DictConfig) and "_target_" in node


def _takes(target: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature: what it takes cannot be known
        return True
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _parameters(target: Callable[..., Any]) -> list[str]:
    return [n for n, p in inspect.signature(target).parameters.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def _config_keys(cfg: DictConfig) -> list[str]:
    keys = set()
    stack: list[tuple[str, Any]] = [("", cfg)]
    while stack:
        prefix, node = stack.pop()
        for name in node:
            if not prefix and name == "hydra":
                continue
            key = f"{prefix}{name}"
            keys.add(key)
            child = node._get_node(name)
            if isinstance(child, DictConfig):
                stack.append((f"{key}.", child))
    return sorted(keys)


def _closest(key: str, known: list[str]) -> list[str]:
    close, siblings = closest_keys(key, known)
    return siblings or close[:3]
