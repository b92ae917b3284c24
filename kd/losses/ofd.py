"""Overhaul of feature distillation (Heo et al., ICCV 2019): pre-ReLU maps, a margin for the
teacher's negative responses, and a partial L2 that ignores what the ReLU would erase anyway."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from kd.losses.spatial import connected_maps, tap_pairs
from kd.model_outputs import ModelOutputs


def negative_margin(target: torch.Tensor) -> torch.Tensor:
    """``(1, C, 1, 1)``: per channel, ``E[x | x < 0]`` of a Gaussian fitted to the channel's values in
    the batch (``mu - sigma * phi(mu/sigma) / Phi(-mu/sigma)``), or ``-3 sigma`` where ``Phi(-mu/sigma)
    <= 0.001`` (the paper's formula, there fed with the BN layer's affine parameters)."""
    flat = target.detach().float().transpose(0, 1).flatten(1)
    mean, std = flat.mean(dim=1), flat.std(dim=1).clamp_min(1e-6)
    z = mean / std
    below = 0.5 * torch.erfc(z / math.sqrt(2))  # Phi(-z)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    margin = torch.where(below > 1e-3, mean - std * density / below.clamp_min(1e-3), -3 * std)
    return margin.view(1, -1, 1, 1)


def partial_l2(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """``sum((s - max(t, m))^2 * 1[s > max(t, m) or t > 0]) / B``: no penalty where the student is
    already below a negative teacher response."""
    goal = torch.maximum(target, margin)
    return ((source - goal).pow(2) * ((source > goal) | (goal > 0))).sum() / source.shape[0]


class OverhaulFeature(nn.Module):
    """Sum over pre-activation tap pairs ``i = 0..n-1`` of ``2^(i-n+1) * partial_l2(connector_i(s_i),
    t_i, negative_margin(t_i))``; the 1x1 conv + BN connectors train with the student (built on the
    first call) and the larger map of a pair is pooled to the smaller.

    Args:
        student_layers: student pre-activation tap aliases (``preact<i>``), in network order.
        teacher_layers: teacher pre-activation tap aliases, paired in order.
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str]) -> None:
        super().__init__()
        self.pairs = tap_pairs("ofd", student_layers, teacher_layers)
        self.connectors = nn.ModuleList()

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps, n = connected_maps(self.pairs, self.connectors, student, teacher), len(self.pairs)
        return torch.stack([2.0 ** (i - n + 1) * partial_l2(s, t, negative_margin(t)) for i, (s, t) in enumerate(maps)]).sum()
