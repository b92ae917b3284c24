"""DIST (Huang et al., NeurIPS 2022): match inter- and intra-class Pearson correlations of predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.model_outputs import ModelOutputs


def mean_pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over rows of the Pearson correlation between matching rows of ``a`` and ``b``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)).mean()


class DISTLoss(nn.Module):
    """``T^2 * (inter_weight * (1 - rho_inter) + intra_weight * (1 - rho_intra))``.

    ``rho_inter`` correlates each sample's class probabilities (rows); ``rho_intra`` correlates
    each class's probabilities across the batch (columns). Probabilities are ``softmax(z / T)``.

    Args:
        temperature: softening temperature ``T > 0`` (the paper uses 1 on ImageNet, 4 on CIFAR).
        inter_weight: weight of the inter-class relation (the paper's beta).
        intra_weight: weight of the intra-class relation (the paper's gamma).
    """

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperature: float = 1.0, inter_weight: float = 1.0, intra_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.inter_weight, self.intra_weight = float(inter_weight), float(intra_weight)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        t = self.temperature
        p_s = F.softmax(student.logits.float() / t, dim=-1)
        p_t = F.softmax(teacher.logits.detach().float() / t, dim=-1)
        inter = 1 - mean_pearson(p_s, p_t)
        intra = 1 - mean_pearson(p_s.T, p_t.T)
        return t * t * (self.inter_weight * inter + self.intra_weight * intra)
