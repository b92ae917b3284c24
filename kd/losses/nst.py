"""Neuron selectivity transfer (Huang & Wang, 2017): MMD between the channels' spatial patterns."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import full_precision, paired_maps, tap_pairs
from kd.model_outputs import ModelOutputs


def polynomial_mmd(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD with kernel ``k(x, y) = (x . y)^2`` between the L2-normalised channel maps."""
    s = F.normalize(f_s.float().flatten(2), dim=2)
    t = F.normalize(f_t.float().flatten(2), dim=2)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b.transpose(1, 2)).pow(2).mean()  # over batch and channel pairs

    with full_precision(s):
        return kernel(t, t) + kernel(s, s) - 2 * kernel(s, t)


class NeuronSelectivity(nn.Module):
    """Sum over tap pairs of the polynomial-kernel MMD (``d = 2, c = 0``) between the sets of channel
    maps (each channel's map over positions, L2-normalised); the larger map is pooled to the smaller.

    Args:
        student_layers: student tap aliases, one per pair.
        teacher_layers: teacher tap aliases, paired in order.
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str]) -> None:
        super().__init__()
        self.pairs = tap_pairs("nst", student_layers, teacher_layers)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        return torch.stack([polynomial_mmd(s, t) for s, t in paired_maps(self.pairs, student, teacher)]).sum()
