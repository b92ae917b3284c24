"""Hard-label cross-entropy: the task loss every run keeps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.taps import ModelOutputs


class HardLabelCE(nn.Module):
    """Cross-entropy between the student's logits and the ground-truth labels.

    Args:
        label_smoothing: as in ``torch.nn.functional.cross_entropy``.
    """

    needs_teacher = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        logits = student.logits.float()
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
