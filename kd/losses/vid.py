"""Variational information distillation (Ahn et al., CVPR 2019): a Gaussian likelihood of the
teacher's feature given the student's, with a learned variance per teacher channel."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.spatial import common_size, tap_pairs
from kd.model_outputs import ModelOutputs


class _Regressor(nn.Module):
    """Three 1x1 convolutions (ReLU between) predicting the teacher map's mean, and the channels' variance."""

    def __init__(self, in_channels: int, channels: int, init_variance: float, eps: float) -> None:
        super().__init__()
        self.mean = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
        )
        # softplus(log_scale) + eps starts at init_variance
        self.log_scale = nn.Parameter(torch.full((channels,), math.log(math.expm1(init_variance - eps))))
        self.eps = eps

    def variance(self) -> torch.Tensor:
        return F.softplus(self.log_scale) + self.eps


class VariationalInformation(nn.Module):
    """Sum over tap pairs of ``mean(0.5 * ((mu(s) - t)^2 / var + log var))``, the negative Gaussian
    log-likelihood (without the constant) of the teacher map ``t`` given the student map ``s``;
    ``mu`` is a per-pair regressor (1x1 convs, student -> teacher channels) and ``var = softplus(a) +
    eps`` a learned variance per teacher channel, both trained with the student (built on the first
    call). The larger map of a pair is pooled to the smaller.

    Args:
        student_layers: student tap aliases, one per pair.
        teacher_layers: teacher tap aliases, paired in order.
        init_variance: the variances' starting value (paper code: 5).
        eps: the variances' floor.
    """

    needs_teacher = True

    def __init__(
        self, student_layers: Sequence[str], teacher_layers: Sequence[str], init_variance: float = 5.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.pairs = tap_pairs("vid", student_layers, teacher_layers)
        self.init_variance, self.eps = init_variance, eps
        self.regressors = nn.ModuleList()

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        losses = []
        for i, (s_alias, t_alias) in enumerate(self.pairs):
            f_s, f_t = common_size(student.feature(s_alias), teacher.feature(t_alias).detach().float())
            if len(self.regressors) == i:
                regressor = _Regressor(f_s.shape[1], f_t.shape[1], self.init_variance, self.eps)
                self.regressors.append(regressor.to(f_s.device))
            regressor = cast(_Regressor, self.regressors[i])
            var = regressor.variance().view(1, -1, 1, 1)
            mean = regressor.mean(f_s).float()
            losses.append((0.5 * ((mean - f_t).pow(2) / var + var.log())).mean())
        return torch.stack(losses).sum()
