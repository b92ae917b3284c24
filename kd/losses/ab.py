"""Activation boundaries (Heo et al., AAAI 2019): the student's neurons fire where the teacher's do."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kd.losses.spatial import connected_maps, tap_pairs
from kd.model_outputs import ModelOutputs


def boundary_loss(source: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """The paper's alternative L2, summed over elements and averaged over the batch: a student value
    above ``-margin`` where the teacher's neuron is off pays ``(s + margin)^2``, one below ``margin``
    where it is on pays ``(s - margin)^2``."""
    off, on = target <= 0, target > 0
    loss = (source + margin).pow(2) * (off & (source > -margin)) + (source - margin).pow(2) * (on & (source <= margin))
    return loss.sum() / source.shape[0]


class ActivationBoundary(nn.Module):
    """Sum over tap pairs ``i = 0..n-1`` of ``2^(i-n+1) * boundary_loss(connector_i(s_i), t_i)``.

    The taps are pre-activation maps (``preact<i>`` aliases: the input of the stage's last ReLU); a
    1x1 conv + BN connector per pair maps the student's channels to the teacher's and trains with the
    student (built on the first call). Deeper pairs weigh more (the last one 1, each earlier one half).

    Args:
        student_layers: student pre-activation tap aliases, in network order.
        teacher_layers: teacher pre-activation tap aliases, paired in order.
        margin: the boundary margin ``m`` (paper: 1).
    """

    needs_teacher = True

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str], margin: float = 1.0) -> None:
        super().__init__()
        self.pairs = tap_pairs("ab", student_layers, teacher_layers)
        self.margin = margin
        self.connectors = nn.ModuleList()

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        maps, n = connected_maps(self.pairs, self.connectors, student, teacher), len(self.pairs)
        return torch.stack([2.0 ** (i - n + 1) * boundary_loss(s, t, self.margin) for i, (s, t) in enumerate(maps)]).sum()
