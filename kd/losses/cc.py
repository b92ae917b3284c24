"""Correlation congruence (Peng et al., ICCV 2019): match sample-to-sample correlation matrices."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.embedding import tap_embedding
from kd.model_outputs import ModelOutputs

KERNELS = ("gaussian", "bilinear")


def correlation_matrix(embedding: torch.Tensor, kernel: str, gamma: float, order: int) -> torch.Tensor:
    """``B x B`` correlations of L2-normalised embeddings.

    ``bilinear``: ``e_i . e_j``. ``gaussian``: ``exp(-gamma |e_i - e_j|^2)`` approximated, as in the
    paper, by its order-``P`` Taylor series ``sum_p exp(-2 gamma) (2 gamma)^p / p! (e_i . e_j)^p``
    (exact for unit vectors as ``P`` grows).
    """
    unit = F.normalize(embedding.float(), dim=1)
    dots = unit @ unit.T
    if kernel == "bilinear":
        return dots
    terms = [math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * dots.pow(p) for p in range(order + 1)]
    return torch.stack(terms).sum(0)


class CorrelationCongruence(nn.Module):
    """``||C_t - C_s||_F^2 / B^2``: mean squared difference of the two correlation matrices.

    Embeddings are pooled taps (widths may differ: only the ``B x B`` matrices are compared).

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
        kernel: ``gaussian`` (paper default) or ``bilinear``.
        gamma: Gaussian kernel width (paper: 0.4).
        order: Taylor order ``P`` of the Gaussian kernel (paper: 2).
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str = "stage4",
        teacher_layer: str = "stage4",
        kernel: str = "gaussian",
        gamma: float = 0.4,
        order: int = 2,
    ) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ConfigError(f"loss.kernel={kernel!r} is not one of {KERNELS}")
        if gamma <= 0 or order < 0:
            raise ConfigError(f"loss.gamma must be > 0 and loss.order >= 0, got gamma={gamma}, order={order}")
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        self.kernel, self.gamma, self.order = kernel, float(gamma), int(order)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        c_s = correlation_matrix(tap_embedding(student, self.student_layer), self.kernel, self.gamma, self.order)
        c_t = correlation_matrix(
            tap_embedding(teacher, self.teacher_layer).detach(), self.kernel, self.gamma, self.order
        )
        return (c_s - c_t).pow(2).mean()
