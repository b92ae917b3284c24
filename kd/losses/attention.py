"""Attention transfer (Zagoruyko & Komodakis, 2017): match where the networks put activation mass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import paired_maps, tap_pairs
from kd.model_outputs import ModelOutputs


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
        self.pairs = tap_pairs("attention transfer", student_layers, teacher_layers)
        self.p = p

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps = paired_maps(self.pairs, student, teacher)
        return torch.stack([(attention_map(s, self.p) - attention_map(t, self.p)).pow(2).mean() for s, t in maps]).sum()
