"""Knowledge review (Chen et al., CVPR 2021, ReviewKD): each teacher stage is matched by a fusion of
the student's same and deeper stages (attention-based fusion, ABF), compared at several scales (HCL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import tap_pairs
from kd.model_outputs import ModelOutputs


class AttentionFusion(nn.Module):
    """ABF: a 1x1 conv to ``mid`` channels, fused with the deeper level's residual by two per-position
    sigmoid weights (none at the deepest level), resized to the teacher's map, then a 3x3 conv to the
    teacher's channels. Returns ``(output, residual)``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.expand = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.attention = nn.Sequential(nn.Conv2d(mid_channels * 2, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(cast(nn.Conv2d, self.reduce[0]).weight, a=1)
        nn.init.kaiming_uniform_(cast(nn.Conv2d, self.expand[0]).weight, a=1)

    def forward(
        self, x: torch.Tensor, deeper: torch.Tensor | None, out_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.reduce(x)
        if self.attention is not None and deeper is not None:
            deeper = F.interpolate(deeper, x.shape[-2:], mode="nearest")
            weights = self.attention(torch.cat([x, deeper], dim=1))
            x = x * weights[:, :1] + deeper * weights[:, 1:]
        if x.shape[-2:] != out_size:
            x = F.interpolate(x, out_size, mode="nearest")
        return self.expand(x), x


def hierarchical_context(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """HCL: MSE at full size plus MSE after average-pooling to 4x4, 2x2, 1x1 (each level smaller than
    the map, weights 1/2, 1/4, 1/8), normalised by the weights' sum."""
    loss, weight, total = F.mse_loss(student, teacher), 1.0, 1.0
    for size in (4, 2, 1):
        if size >= student.shape[-2]:
            continue
        weight /= 2
        pooled_s, pooled_t = F.adaptive_avg_pool2d(student, size), F.adaptive_avg_pool2d(teacher, size)
        loss, total = loss + weight * F.mse_loss(pooled_s, pooled_t), total + weight
    return loss / total


class KnowledgeReview(nn.Module):
    """Sum over levels of :func:`hierarchical_context` between ABF outputs and teacher maps.

    Student taps are visited from the deepest: level ``i``'s ABF fuses student map ``i`` with the
    residual of level ``i + 1`` and predicts teacher map ``i``. The ABFs (``min(512, C_deepest)`` middle
    channels) train with the student, built on the first call. The reference code also reviews the
    pooled embedding as a 1x1 map; list it as a tap pair to do the same.

    Args:
        student_layers: student tap aliases, shallow to deep.
        teacher_layers: teacher tap aliases (the paper: pre-activation maps), paired in order.
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str]) -> None:
        super().__init__()
        self.pairs = tap_pairs("review", student_layers, teacher_layers)
        self.fusions: nn.ModuleList | None = None

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps_s = [student.feature(s) for s, _ in self.pairs]
        maps_t = [teacher.feature(t).detach().float() for _, t in self.pairs]
        if self.fusions is None:
            mid = min(512, maps_s[-1].shape[1])
            self.fusions = nn.ModuleList(
                AttentionFusion(f_s.shape[1], mid, f_t.shape[1], fuse=i < len(maps_s) - 1)
                for i, (f_s, f_t) in enumerate(zip(maps_s, maps_t, strict=True))
            ).to(maps_s[0].device)
        losses, residual = [], None
        for i in reversed(range(len(maps_s))):
            out, residual = self.fusions[i](maps_s[i], residual, tuple(maps_t[i].shape[-2:]))
            losses.append(hierarchical_context(out.float(), maps_t[i]))
        return torch.stack(losses).sum()
