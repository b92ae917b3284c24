"""Where a step's teacher outputs come from: the teacher-output cache (by split, and by epoch for
augmented training views) or the live teacher, for whatever the cache does not hold.

``kd.teacher.cache`` fills a :class:`TeacherSource` once per run; ``DistillModule`` asks it for every
batch and never looks at cache entries itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from kd.model_outputs import ModelOutputs, TeacherOutputs

LiveTeacher = Callable[[Any, "torch.Tensor | None"], ModelOutputs]  # (inputs, index) -> the teacher's outputs


@dataclass(frozen=True)
class CacheEntry:
    """Which cached outputs: a split, and for the augmented views of one training epoch that epoch."""

    split: str
    epoch: int | None = None

    @property
    def name(self) -> str:
        """The entry's name in cache files and records: ``train``, ``val``, ``test`` or ``train@<epoch>``."""
        return self.split if self.epoch is None else f"{self.split}@{self.epoch}"


class TeacherSource:
    """The teacher's outputs for a batch: the cached ones where the cache holds its split (this epoch's
    augmented views for training, where those are cached), else the live teacher's, else None (a run
    without a teacher).

    Args:
        cached: cached outputs by entry, read by the batch's sample ``index``.
        live: ``(inputs, index) -> ModelOutputs``, the frozen teacher through its taps; None without one.
    """

    def __init__(self, cached: Mapping[CacheEntry, TeacherOutputs] | None = None, live: LiveTeacher | None = None):
        self.cached = dict(cached or {})
        self.live = live

    def entry(self, split: str, epoch: int = 0) -> TeacherOutputs | None:
        """The cached outputs of ``split`` in ``epoch`` (that epoch's views where cached per epoch), or None."""
        return self.cached.get(CacheEntry(split, epoch), self.cached.get(CacheEntry(split)))

    def outputs(
        self, inputs: Any, student_out: ModelOutputs, index: torch.Tensor | None = None, split: str | None = None,
        epoch: int = 0, view: torch.Tensor | None = None,
    ) -> ModelOutputs | None:
        """The teacher's outputs for a batch of ``split`` (None: not from a data split, e.g. the dry run)."""
        cached = None if split is None or index is None else self.entry(split, epoch)
        if cached is not None and index is not None:
            return cached.lookup(index, student_out.mask, student_out.logits.device, view)
        if self.live is None:
            return None
        with torch.no_grad():
            return self.live(inputs, index)
