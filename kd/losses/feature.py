"""FitNets (Romero et al., 2015) hint loss: regress a teacher feature from a student feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.connectors import auto
from kd.model_outputs import ModelOutputs

Connector = Callable[[torch.Size, torch.Size], nn.Module]


class FeatureHint(nn.Module):
    """MSE between ``connector(student feature)`` and the (detached) teacher feature.

    The connector is built from the two shapes on the first call; the distillation module makes
    that call once before the optimiser is created, so its parameters train with the student.
    Student maps larger than the teacher's are average-pooled to the teacher's size, smaller ones
    are bilinearly upsampled.

    Args:
        student_layer: tap alias on the student (declared under ``layers:`` in student/*.yaml).
        teacher_layer: tap alias on the teacher (declared under ``layers:`` in teacher/*.yaml).
    """

    needs_teacher = True

    def __init__(
        self, student_layer: str = "stage4", teacher_layer: str = "stage4", connector: Connector = auto
    ) -> None:
        super().__init__()
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.build_connector = connector
        self.connector: nn.Module | None = None

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        feat_s = student.feature(self.student_layer)
        feat_t = teacher.feature(self.teacher_layer).detach().float()
        if self.connector is None:
            self.connector = self.build_connector(feat_s.shape, feat_t.shape).to(feat_s.device)
        mapped = self.connector(feat_s).float()
        if mapped.dim() == 4 and mapped.shape[-2:] != feat_t.shape[-2:]:
            if mapped.shape[-1] > feat_t.shape[-1]:
                mapped = F.adaptive_avg_pool2d(mapped, cast(tuple[int, int], feat_t.shape[-2:]))
            else:
                mapped = F.interpolate(mapped, size=feat_t.shape[-2:], mode="bilinear")
        return F.mse_loss(mapped, feat_t)
