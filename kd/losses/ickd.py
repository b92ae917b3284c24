"""Inter-channel correlation (Liu et al., ICCV 2021): match the channels' correlation matrices."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import connected_maps, full_precision, tap_pairs
from kd.model_outputs import ModelOutputs


def channel_correlation(feature: torch.Tensor) -> torch.Tensor:
    """``(B, C, C)``: ``f f^T`` over positions, each row L2-normalised."""
    flat = feature.float().flatten(2)
    with full_precision(flat):
        return F.normalize(torch.bmm(flat, flat.transpose(1, 2)), dim=2)


def correlation_distance(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """``||G_s - G_t||_F^2 / (B * C)`` of the two maps' :func:`channel_correlation` (equal widths)."""
    diff = channel_correlation(f_s) - channel_correlation(f_t)
    return diff.pow(2).sum() / (diff.shape[0] * diff.shape[1])


class InterChannelCorrelation(nn.Module):
    """Sum over tap pairs of ``||G_s - G_t||_F^2 / (B * C_t)``, ``G`` = :func:`channel_correlation`;
    the student map first passes a 1x1 conv + BN to the teacher's channel count (trained with the
    student, built on the first call), and the larger map is pooled to the smaller.

    Args:
        student_layers: student tap aliases, one per pair.
        teacher_layers: teacher tap aliases, paired in order.
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str]) -> None:
        super().__init__()
        self.pairs = tap_pairs("ickd", student_layers, teacher_layers)
        self.connectors = nn.ModuleList()

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps = connected_maps(self.pairs, self.connectors, student, teacher)
        return torch.stack([correlation_distance(s, t) for s, t in maps]).sum()
