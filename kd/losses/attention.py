"""Attention transfer (Zagoruyko & Komodakis, 2017): match where the networks put activation mass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.taps import ModelOutputs


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``normalize(mean_c |f|^p)`` flattened to ``(B, H*W)``, unit L2 norm per sample."""
    return F.normalize(feature.float().abs().pow(p).mean(dim=1).flatten(1), dim=1)


class AttentionTransfer(nn.Module):
    """Sum over tap pairs of ``mean((a_s - a_t)^2)`` between normalised attention maps.

    Pairs are summed as in RepDistiller's and mdistiller's code (whose CIFAR-100 weight 1000
    assumes the sum); each pair's squared difference is averaged over batch and positions.

    When a pair's spatial sizes differ, the larger map is average-pooled to the smaller one.

    Args:
        student_layers: student tap aliases, one per pair.
        teacher_layers: teacher tap aliases, paired in order with ``student_layers``.
        p: power applied to activations before averaging over channels (the paper uses 2).
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str], p: float = 2.0) -> None:
        super().__init__()
        if len(student_layers) != len(teacher_layers) or not student_layers:
            raise ConfigError(
                f"attention transfer pairs taps in order: got student_layers={list(student_layers)} "
                f"and teacher_layers={list(teacher_layers)}; give the same non-zero number of each."
            )
        self.pairs = list(zip(student_layers, teacher_layers, strict=True))
        self.p = p

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        losses = []
        for s_alias, t_alias in self.pairs:
            feat_s, feat_t = student.feature(s_alias), teacher.feature(t_alias).detach()
            size = min(feat_s.shape[-2:], feat_t.shape[-2:])
            if feat_s.shape[-2:] != size:
                feat_s = F.adaptive_avg_pool2d(feat_s, size)
            if feat_t.shape[-2:] != size:
                feat_t = F.adaptive_avg_pool2d(feat_t, size)
            diff = attention_map(feat_s, self.p) - attention_map(feat_t, self.p)
            losses.append(diff.pow(2).mean())
        return torch.stack(losses).sum()
