"""``data.module.augment`` made into transforms: a list of ``{_target_: <a kd.data.augment.Transform>,
<its arguments>}``, ``true`` (:data:`STANDARD`: 2-pixel shifts and horizontal flips, what ``true`` meant
before augmentation was a list) or ``false``, null or ``[]`` (none).

The value is checked by its rule (``kd.config.schema``, a ``kd.config.targets.TargetList``), and its list
form enters job identities (``kd.config.migrations.augment_list``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_object

from kd.config.migrations import AUGMENT_TRUE, augment_list
from kd.config.schema import rule_for
from kd.data.augment import Transform
from kd.errors import ConfigError

KEY = "data.module.augment"


def augment_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid ``data.module.augment`` (the key's rule; built transforms pass), or None."""
    rule = rule_for(KEY)
    assert rule is not None  # declared in kd.config.schema
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = [t.description() if isinstance(t, Transform) else t for t in value]
    return rule.problem(value)


def build(config: Mapping[str, Any]) -> Transform:
    """The transform a checked ``{_target_: ..., <arguments>}`` config describes."""
    return get_object(str(config["_target_"]))(**{k: v for k, v in config.items() if k != "_target_"})


def transforms_of(augment: Any) -> tuple[Transform, ...]:
    """The transforms ``augment`` stands for, in order: built ones are kept, configs are built."""
    if (problem := augment_problem(augment)) is not None:
        raise ConfigError(f"{KEY}={augment!r}: {problem}")
    return tuple(t if isinstance(t, Transform) else build(t) for t in augment_list(augment))


# ``data.module.augment: true``
STANDARD: tuple[Transform, ...] = transforms_of(AUGMENT_TRUE)
