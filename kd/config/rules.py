"""What a config key declares: its type and, for numbers, a range (or a set of choices); the identities
it enters; and its value in records written before it existed.

A :class:`Rule` checks one resolved value and says what is wrong in words a user can act on. The
rules themselves, by key, are in ``kd.config.schema``; ``kd.jobs.validate`` applies them, and
``kd.config.identities`` and ``kd.config.migrations`` read the other two declarations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
         "list": "a list", "dict": "a mapping", "any": "any value", "file": "an existing file",
         "run_folder": "a kd run's folder (one holding job.json)"}
JOB_FILE = "job.json"  # the record that marks a kd run's folder (kd.jobs.resume writes it)
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: a zip archive (or, before torch 1.6, a pickle)

# The identities a key can enter (what each one keys: kd.config.identities).
JOB = "job"  # what a run computes: resume finds an earlier run of the job by it
BASELINE = "baseline"  # what a distilled student shares with its baseline run (loss=ce)
TEACHER = "teacher"  # what a trained teacher's weights depend on (its data and trainer keys)
CACHE = "cache"  # what the teacher's output on one sample depends on (its data keys)
RUN_NAME = "run_name"  # shown in the run's name (W&B), from the overrides that set it
EVERY = frozenset({JOB, BASELINE, TEACHER, CACHE, RUN_NAME})
STUDENT_RUN = frozenset({JOB, BASELINE, RUN_NAME})  # the default: changes what the student computes
DISTILLATION = frozenset({JOB, RUN_NAME})  # read by distillation only: a baseline (loss=ce) lacks it
NOWHERE = frozenset[str]()  # names, places or shows a run, or says what a config is; changes no result


@dataclass(frozen=True)
class Legacy:
    """A key's value in records written before it existed: set where ``when`` (a dotted key; ``*`` = the
    same names as in the key itself) is in the record."""

    value: Any
    when: str


@dataclass(frozen=True)
class Group:
    """What a key holding other keys declares: the identities its keys enter unless they say otherwise,
    and its value in records written before it existed."""

    enters: frozenset[str]
    legacy: Legacy | None = None
    help: str = ""


@dataclass(frozen=True)
class Rule:
    """What a config value may be.

    Args:
        kind: ``int``, ``float`` (ints allowed), ``bool``, ``str``, ``list``, ``dict``, ``file``,
            ``run_folder`` or ``any``, or a tuple of them (any one fits).
        null: whether null is allowed.
        gt, ge, lt, le: bounds for numbers (and for each item of a list of numbers).
        choices: the allowed values (any kind).
        items: the rule for each item of a list.
        magic: for ``file``: the bytes such a file starts with (any one of them; these are a checkpoint's).
        help: what the key means, added to the message.
        enters: the identities the key enters (``JOB``, ...); None = those of the group holding it.
        legacy: its value in records written before it existed.
        decided_by_kd: values kd replaces before the ``_target_`` gets them (``auto``), so the target's
            annotation does not judge them.
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
    enters: frozenset[str] | None = None
    legacy: Legacy | None = None
    decided_by_kd: tuple[Any, ...] = ()
    imports: ClassVar[bool] = False  # whether checking a value imports code (checked after the plain rules)

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
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be {self.allowed()}, not {value}"
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
    if kind == "run_folder":
        return isinstance(value, str) and (Path(value) / JOB_FILE).is_file()
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


# The helpers below pass ``enters`` and ``legacy`` (and ``help``) on to :class:`Rule` as ``declared``.
def Int(ge: float | None = None, *, gt: float | None = None, le: float | None = None, null: bool = False,
        **declared: Any) -> Rule:
    """An integer (optionally bounded)."""
    return Rule("int", null=null, gt=gt, ge=ge, le=le, **declared)


def Float(*, gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None,
          null: bool = False, **declared: Any) -> Rule:
    """A finite number (ints allowed; optionally bounded)."""
    return Rule("float", null=null, gt=gt, ge=ge, lt=lt, le=le, **declared)


def Share(null: bool = False, **declared: Any) -> Rule:
    """A number between 0 and 1."""
    return Rule("float", ge=0, le=1, null=null, **declared)


def Bool(null: bool = False, **declared: Any) -> Rule:
    """True or false."""
    return Rule("bool", null=null, **declared)


def Str(null: bool = False, **declared: Any) -> Rule:
    """A string."""
    return Rule("str", null=null, **declared)


def Choice(*choices: Any, **declared: Any) -> Rule:
    """One of ``choices`` (None among them allows null)."""
    return Rule("any", null=None in choices, choices=tuple(c for c in choices if c is not None), **declared)


def ListOf(item: Rule, null: bool = False, **declared: Any) -> Rule:
    """A list whose items each follow ``item``."""
    return Rule("list", null=null, items=item, **declared)


def Table(null: bool = False, **declared: Any) -> Rule:
    """A mapping whose content is not checked key by key (e.g. tap aliases -> module paths)."""
    return Rule("dict", null=null, **declared)


def Checkpoint(null: bool = False, **declared: Any) -> Rule:
    """An existing file written by ``torch.save``."""
    return Rule("file", null=null, magic=CHECKPOINT_MAGIC, **declared)
