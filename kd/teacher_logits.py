"""In-memory cache of the teacher's training-set logits, for runs whose teacher outputs repeat.

The teacher is frozen and in eval mode, so on a deterministic view of each training sample (no random
augmentation) its logits are the same every epoch: the first epoch computes them, later epochs read
them by the batch's data-set ``index``. Only for losses that read nothing but teacher logits.
"""

from __future__ import annotations

from typing import Any

import torch

from kd.errors import ConfigError


class TeacherLogitCache:
    """Teacher logits by training-sample index, filled as batches come.

    Args:
        num_samples: training-set size (indices lie below it).
        num_classes: logit width.
    """

    def __init__(self, num_samples: int, num_classes: int) -> None:
        self.logits = torch.zeros(num_samples, num_classes)
        self.filled = torch.zeros(num_samples, dtype=torch.bool)
        self.hits = self.misses = 0

    def lookup(self, index: torch.Tensor) -> torch.Tensor | None:
        """The cached logits of the whole batch, or None if any sample is missing."""
        if bool(self.filled[index].all()):
            self.hits += 1
            return self.logits[index]
        self.misses += 1
        return None

    def store(self, index: torch.Tensor, logits: torch.Tensor) -> None:
        """Remember a batch's teacher logits (as float32)."""
        self.logits[index] = logits.detach().float().cpu()
        self.filled[index] = True


def logit_cache_for(
    request: bool | str, datamodule: Any, loss: Any, train_size: int | None, num_classes: int
) -> TeacherLogitCache | None:
    """A cache when ``request`` (``cache_teacher_logits``: auto/true) allows one and it is safe.

    Unsafe: randomly augmented training batches, or loss terms that read teacher features. ``true``
    then raises a ConfigError; ``auto`` prints why the teacher is recomputed.
    """
    reasons = []
    if getattr(datamodule, "augment", False):
        reasons.append("training batches are randomly augmented (data.module.augment=true)")
    if loss.reads_teacher_features:
        reasons.append(f"loss terms {loss.active} read teacher features, not only logits")
    if not train_size:
        reasons.append("the data module reports no train_size")
    if reasons:
        if request in (True, "true"):
            raise ConfigError(f"cache_teacher_logits=true, but {'; '.join(reasons)}")
        print(f"[kd] teacher logits recomputed every epoch: {'; '.join(reasons)}", flush=True)
        return None
    print("[kd] teacher logits cached in memory after the first epoch (cache_teacher_logits)", flush=True)
    return TeacherLogitCache(train_size, num_classes)
