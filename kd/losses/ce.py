"""Hard-label cross-entropy: the task loss every run keeps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.model_outputs import ModelOutputs


class HardLabelCE(nn.Module):
    """Cross-entropy between the student's logits and the ground-truth labels.

    ``(B, C)`` logits take ``(B,)`` labels; per-token ``(B, L, V)`` logits take ``(B, L)`` labels,
    where ``ignore_index`` marks padding.

    Args:
        label_smoothing: as in ``torch.nn.functional.cross_entropy``.
        ignore_index: label value that contributes nothing.
    """

    needs_teacher = False

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.label_smoothing, self.ignore_index = label_smoothing, ignore_index

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        logits = student.logits.float()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            label_smoothing=self.label_smoothing,
            ignore_index=self.ignore_index,
        )
