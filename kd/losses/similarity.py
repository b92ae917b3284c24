"""Similarity-preserving KD (Tung & Mori, 2019): match the batch's pairwise similarity matrices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.model_outputs import ModelOutputs


def similarity_matrix(feature: torch.Tensor) -> torch.Tensor:
    """``G = F F^T`` over flattened per-sample features, each row L2-normalised (the paper's Eq. 2)."""
    flat = feature.float().flatten(1)
    return F.normalize(flat @ flat.T, dim=1)


def _zero_padding(feature: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sequences ``(B, L, D)`` with their padding positions zeroed, so padding adds no similarity."""
    if mask is None or feature.dim() != 3:
        return feature
    return feature * mask.to(feature.dtype).unsqueeze(-1)


class SimilarityPreserving(nn.Module):
    """``||G_s - G_t||_F^2 / B^2`` for one student/teacher tap pair.

    Student and teacher features may differ in width and spatial size: only the ``B x B``
    similarity matrices are compared.

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
    """

    needs_teacher = True

    def __init__(self, student_layer: str = "stage4", teacher_layer: str = "stage4") -> None:
        super().__init__()
        self.student_layer, self.teacher_layer = student_layer, teacher_layer

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        g_s = similarity_matrix(_zero_padding(student.feature(self.student_layer), student.mask))
        g_t = similarity_matrix(_zero_padding(teacher.feature(self.teacher_layer).detach(), teacher.mask))
        batch = g_s.shape[0]
        return (g_s - g_t).pow(2).sum() / (batch * batch)
