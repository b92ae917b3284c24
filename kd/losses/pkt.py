"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018): match cosine-kernel neighbour laws."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.embedding import tap_embedding
from kd.model_outputs import ModelOutputs


def conditional_probabilities(embedding: torch.Tensor) -> torch.Tensor:
    """Row-normalised cosine kernel ``K_ij = (1 + cos(e_i, e_j)) / 2``."""
    unit = F.normalize(embedding, dim=1)
    kernel = (unit @ unit.T + 1.0) / 2.0
    return kernel / kernel.sum(dim=1, keepdim=True)


class ProbabilisticKT(nn.Module):
    """``mean_ij p_ij * log(p_ij / q_ij)``: teacher (p) vs student (q) conditional probabilities.

    As in the authors' code, the mean runs over all ``B x B`` entries and ``eps`` guards the logs.

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
        eps: added inside the logarithms.
    """

    needs_teacher = True

    def __init__(self, student_layer: str = "stage4", teacher_layer: str = "stage4", eps: float = 1e-7) -> None:
        super().__init__()
        self.student_layer, self.teacher_layer, self.eps = student_layer, teacher_layer, eps

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        q = conditional_probabilities(tap_embedding(student, self.student_layer))
        p = conditional_probabilities(tap_embedding(teacher, self.teacher_layer).detach())
        return (p * torch.log((p + self.eps) / (q + self.eps))).mean()
