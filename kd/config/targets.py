"""A rule for a list of ``_target_`` mappings (``data.module.augment``'s transforms): each item's class is
imported by its dotted name and built with its arguments, so a wrong class, argument name or value is
refused before a run, in words. ``kd.config`` names the base class by its dotted name, as configs do."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hydra.utils import get_object

from kd.config.rules import Rule


@dataclass(frozen=True)
class TargetList(Rule):
    """A list of ``{_target_: <a subclass of base>, <its arguments>}`` (or what ``kind`` allows besides a
    list, e.g. true or false, and null where ``null``).

    Args:
        base: the dotted name of the class every ``_target_`` must subclass.
    """

    base: str = ""
    imports: ClassVar[bool] = True  # each _target_ is imported and built

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule (the first bad item, by its place), or None."""
        if not isinstance(value, Sequence) or isinstance(value, str):
            return super().problem(value)
        for i, item in enumerate(value):
            if (why := self.item_problem(item)) is not None:
                return f"item {i} {why}" if why.startswith("(") else f"item {i}: {why}"
        return None

    def item_problem(self, item: Any) -> str | None:
        """Why ``item`` is not a buildable ``_target_`` mapping of a subclass of ``base``, or None."""
        if not isinstance(item, Mapping) or "_target_" not in item:
            return f"({item!r}) must be a mapping with a _target_ and its arguments"
        target, arguments = item["_target_"], {k: v for k, v in item.items() if k != "_target_"}
        try:
            cls = get_object(str(target))
        except Exception as err:  # noqa: BLE001 - any import failure is the config's fault
            return f"_target_={target}: cannot import it ({' '.join(str(err).split())}); {self.known()}"
        if not (inspect.isclass(cls) and issubclass(cls, get_object(self.base))):
            return f"_target_={target} is not a {self.base} ({self.known()})"
        try:
            inspect.signature(cls).bind(**arguments)
        except TypeError as err:
            return f"{cls.__name__}: {err} (its arguments: {', '.join(inspect.signature(cls).parameters) or 'none'})"
        try:
            cls(**arguments)
        except (TypeError, ValueError) as err:
            return f"{cls.__name__}: {err}"
        return None

    def known(self) -> str:
        """The subclasses of ``base`` defined beside it, by ``_target_``."""
        base = get_object(self.base)
        names = [f"{c.__module__}.{c.__qualname__}" for c in base.__subclasses__() if c.__module__ == base.__module__]
        return f"kd's: {', '.join(names)}"

    def allowed(self) -> str:
        """The allowed values in words."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        text = (f"a list of mappings, each a _target_ (a {self.base}; {self.known()}; or your own subclass) "
                "and its arguments")
        return text + (", true or false" if "bool" in kinds else "") + (", or null" if self.null else "")
