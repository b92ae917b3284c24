"""The identities a config key enters, read from its declaration in ``kd.config.schema``.

An identity is the part of a config that keys something: a run (``JOB``, for ``resume``), its
baseline (``BASELINE``), a trained teacher (``TEACHER``), a teacher-output cache entry (``CACHE``) and
a run's name (``RUN_NAME``). Each is a view of the config without the keys that do not enter it;
``JOB`` and ``BASELINE`` view the whole config, ``TEACHER`` and ``CACHE`` the data and trainer keys
(``kd.teacher.weights``, ``kd.teacher.cache``), ``RUN_NAME`` the overrides.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from kd.config.rules import RUN_NAME, STUDENT_RUN, Group, Rule
from kd.config.schema import GROUPS, RULES

DECLARED: dict[str, Rule | Group] = {**RULES, **GROUPS}
PATTERNS = {tuple(key.split(".")): d for key, d in DECLARED.items() if any(c in key for c in "*?[")}


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return len(pattern) == len(parts) and all(fnmatchcase(k, p) for p, k in zip(pattern, parts, strict=True))


def declaration(key: str) -> Rule | Group | None:
    """The rule or group declared for the dotted ``key`` (by name, else by pattern), or None."""
    if key in DECLARED:
        return DECLARED[key]
    parts = tuple(key.split("."))
    return next((d for pattern, d in PATTERNS.items() if _matches(pattern, parts)), None)


@cache
def identities_of(key: str) -> frozenset[str]:
    """The identities ``key`` enters: its own declaration's, else those of the nearest group holding it."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = declaration(".".join(parts[:end]))
        if found is not None and found.enters is not None:
            return found.enters
    return STUDENT_RUN


def enters(key: str, identity: str) -> bool:
    """Whether the dotted ``key`` enters ``identity``."""
    return identity in identities_of(key)


def view(plain: Any, prefix: str, identity: str) -> Any:
    """``plain`` (the config data found at key ``prefix``; "" = the whole config) without the keys that
    do not enter ``identity``. Items of lists are read under their list's key."""
    if isinstance(plain, dict):
        out = {}
        for name, value in plain.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            if enters(key, identity):
                out[name] = view(value, key, identity)
        return out
    if isinstance(plain, list):
        return [view(item, prefix, identity) for item in plain]
    return plain


def keys_entering(prefix: str, identity: str) -> tuple[str, ...]:
    """The names of the declared keys directly under ``prefix`` that enter ``identity``."""
    head = prefix + "."
    names = {key[len(head):] for key in RULES if key.startswith(head) and "." not in key[len(head):]}
    return tuple(sorted(n for n in names if "*" not in n and enters(head + n, identity)))


def run_name(overrides: list[str]) -> str:
    """The overrides whose key enters ``RUN_NAME``, sorted and joined by commas (``loss=kd,seed=1``)."""
    kept = [o for o in overrides if enters(o.split("=", 1)[0].lstrip("+~"), RUN_NAME)]
    return ",".join(sorted(kept))
