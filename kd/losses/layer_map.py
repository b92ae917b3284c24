"""Student -> teacher layer maps over numbered tap aliases (``hidden1``, ``hidden2``, ...)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from kd.errors import ConfigError


def numbered_aliases(aliases: list[str] | dict, prefix: str) -> dict[int, str]:
    """``{n: alias}`` for the aliases ``<prefix><n>`` in ``aliases``, ordered by ``n``."""
    found = [(int(m.group(1)), a) for a in aliases if (m := re.fullmatch(rf"{re.escape(prefix)}(\d+)", a))]
    return dict(sorted(found))


def uniform_layer_map(student_aliases: list[str], teacher_aliases: list[str], prefix: str) -> dict[str, str]:
    """TinyBERT's uniform map: student layer ``m`` of ``M`` reads teacher layer ``m * N / M`` of ``N``.

    Layer numbers come from the aliases (``hidden3`` is layer 3); ``M`` and ``N`` are the highest
    numbers declared. With 2 student and 6 teacher layers: ``hidden1 -> hidden3``, ``hidden2 -> hidden6``.
    """
    students, teachers = numbered_aliases(student_aliases, prefix), numbered_aliases(teacher_aliases, prefix)
    if not students or not teachers:
        raise ConfigError(
            f"uniform layer map: the student taps {sorted(student_aliases)} and teacher taps "
            f"{sorted(teacher_aliases)} must both declare {prefix}1, {prefix}2, ... under `layers:`; "
            "or give loss.layer_map explicitly ({student_alias: teacher_alias})"
        )
    m, n = max(students), max(teachers)
    mapping = {alias: f"{prefix}{max(layer * n // m, 1)}" for layer, alias in students.items()}
    missing = sorted(set(mapping.values()) - set(teachers.values()))
    if missing:
        raise ConfigError(
            f"uniform layer map {mapping} needs teacher taps {missing}; declare them under the teacher's "
            "`layers:` or give loss.layer_map explicitly"
        )
    return mapping


def checked_layer_map(layer_map: Mapping[str, str] | None) -> dict[str, str] | None:
    """A plain dict copy of an explicit map, or None (uniform) when not given."""
    if layer_map is None:
        return None
    if not layer_map:
        raise ConfigError("loss.layer_map is empty: give {student_alias: teacher_alias} pairs, or null for uniform")
    return {str(k): str(v) for k, v in layer_map.items()}
