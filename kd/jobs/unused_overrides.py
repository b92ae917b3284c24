"""Overrides typed on the command line that this job does not use, named instead of ignored.

Every group keeps its config whether a job reads it or not (``teacher`` is composed for ``loss=ce`` too),
so a key the user set can be valid and still have no effect: a teacher key in a job without a teacher
(unless another value refers to it, as text data does to the teacher's tokenizer), the teacher stage's
keys where the teacher's weights are given, the cache's keys where the cache is off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf

from kd.jobs.modality import choice
from kd.jobs.validate import constraints, mentioned, source_of
from kd.teacher.weights import trains_teacher

TEACHER_KEYS = ("teacher", "teacher_outputs")
STAGE_KEYS = ("teacher.epochs", "teacher.optim", "teacher.seed")  # the teacher stage's recipe
CACHE_KEYS = ("teacher_outputs.top_k", "teacher_outputs.dtype", "teacher_outputs.features",
              "teacher_outputs.augmented_views")


def _typed(overrides: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(key or group, the override as typed)`` of each ``key=value``, ``+key=value`` or ``group=option``."""
    for text in map(str, overrides):
        key, sep, _ = text.lstrip("+~").partition("=")
        if sep:
            yield key, text


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def _read_elsewhere(cfg: DictConfig) -> set[str]:
    """The teacher keys that values outside the teacher's groups refer to (``data.tokenizer`` is the
    teacher's tokenizer: the teacher config matters to a text or LM job without a teacher too)."""
    _, _, leaves = constraints(cfg, imports=False)
    return {ref for leaf in leaves if not _under(leaf.key, TEACHER_KEYS)
            for ref in [source_of(leaf.key, leaf.raw), *mentioned(leaf.key, leaf.raw)] if ref and _under(ref, TEACHER_KEYS)}


def unused_overrides(cfg: DictConfig, uses_teacher: bool) -> list[str]:
    """Each override in ``run.overrides`` that this job does not use, with why (``uses_teacher``: whether
    the job loads a teacher at all)."""
    loss = choice(cfg, "loss", "<the loss config>")
    read = _read_elsewhere(cfg) if not uses_teacher else set()
    cache_off = OmegaConf.select(cfg, "teacher_outputs.cache", default="auto") is False
    found = []
    for key, text in _typed(cfg.run.get("overrides") or []):
        if not uses_teacher and _under(key, TEACHER_KEYS) and not any(_under(r, (key,)) or _under(key, (r,)) for r in read):
            found.append(f"{text} (loss={loss} uses no teacher)")
        elif uses_teacher and not trains_teacher(cfg) and _under(key, STAGE_KEYS):
            why = "teacher.ckpt is given" if cfg.teacher.get("ckpt") else "the teacher is used as pretrained"
            found.append(f"{text} ({why}, so no teacher stage runs)")
        elif uses_teacher and cache_off and _under(key, CACHE_KEYS):
            found.append(f"{text} (teacher_outputs.cache=false: the teacher runs live)")
    return found
