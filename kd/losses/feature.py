"""FitNets (Romero et al., 2015) hint loss: regress a teacher feature from a student feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.taps import ModelOutputs


def build_connector(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """A learnable map from the student's feature width to the teacher's.

    4-D maps ``(B, C, H, W)`` get a 1x1 convolution plus batch norm; 2-D ``(B, C)`` and 3-D
    ``(B, L, C)`` features get a linear layer on the last dimension.
    """
    if len(student_shape) != len(teacher_shape):
        raise ConfigError(
            f"feature hint: student feature has shape {tuple(student_shape)} but teacher feature "
            f"has {tuple(teacher_shape)}; no connector maps between different ranks. "
            "Pick taps of the same kind (both convolutional maps, or both vectors)."
        )
    if len(student_shape) == 4:
        return nn.Sequential(
            nn.Conv2d(student_shape[1], teacher_shape[1], kernel_size=1, bias=False),
            nn.BatchNorm2d(teacher_shape[1]),
        )
    if len(student_shape) in (2, 3):
        return nn.Linear(student_shape[-1], teacher_shape[-1])
    raise ConfigError(f"feature hint: unsupported feature rank {len(student_shape)}")


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

    def __init__(self, student_layer: str = "stage4", teacher_layer: str = "stage4") -> None:
        super().__init__()
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.connector: nn.Module | None = None

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        feat_s = student.feature(self.student_layer)
        feat_t = teacher.feature(self.teacher_layer).detach().float()
        if self.connector is None:
            self.connector = build_connector(feat_s.shape, feat_t.shape).to(feat_s.device)
        mapped = self.connector(feat_s).float()
        if mapped.dim() == 4 and mapped.shape[-2:] != feat_t.shape[-2:]:
            if mapped.shape[-1] > feat_t.shape[-1]:
                mapped = F.adaptive_avg_pool2d(mapped, feat_t.shape[-2:])
            else:
                mapped = F.interpolate(mapped, size=feat_t.shape[-2:], mode="bilinear")
        return F.mse_loss(mapped, feat_t)
