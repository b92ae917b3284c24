"""Flow of solution procedure (Yim et al., CVPR 2017): match Gram matrices between consecutive taps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kd.losses.connectors import conv_bn
from kd.losses.spatial import common_size, full_precision, tap_pairs
from kd.model_outputs import ModelOutputs


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``(B, C_bottom, C_top)``: ``G_ij = mean over positions of bottom_i * top_j`` (the larger map pooled)."""
    bottom, top = common_size(bottom.float(), top.float())
    with full_precision(bottom):
        return torch.bmm(bottom.flatten(2), top.flatten(2).transpose(1, 2)) / bottom[0, 0].numel()


class FlowOfSolution(nn.Module):
    """Sum over consecutive tap pairs ``(i, i+1)`` of ``mean((G_s - G_t)^2)``, ``G`` the FSP matrix.

    The paper pairs taps of equal channel counts (resnet56 -> resnet20: 16, 32, 64). Where a student
    tap has another count, a 1x1 conv + BN connector maps it to the teacher's first (built on the
    first call, trained with the student; our extension, so any pair works).

    Args:
        student_layers: at least two student tap aliases, in network order.
        teacher_layers: as many teacher tap aliases, paired in order.
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str]) -> None:
        super().__init__()
        self.pairs = tap_pairs("fsp", student_layers, teacher_layers, least=2)
        self.connectors: nn.ModuleList | None = None

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps_s = [student.feature(s) for s, _ in self.pairs]
        maps_t = [teacher.feature(t).detach() for _, t in self.pairs]
        if self.connectors is None:
            self.connectors = nn.ModuleList(
                nn.Identity() if f_s.shape[1] == f_t.shape[1] else conv_bn(f_s.shape, f_t.shape).to(f_s.device)
                for f_s, f_t in zip(maps_s, maps_t, strict=True)
            )
        maps_s = [connector(f_s) for connector, f_s in zip(self.connectors, maps_s, strict=True)]
        losses = [
            (fsp_matrix(maps_s[i], maps_s[i + 1]) - fsp_matrix(maps_t[i], maps_t[i + 1])).pow(2).mean()
            for i in range(len(self.pairs) - 1)
        ]
        return torch.stack(losses).sum()
