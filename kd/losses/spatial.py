"""Shared helpers of the feature-map losses: equal spatial sizes, paired taps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.connectors import conv_bn
from kd.model_outputs import ModelOutputs


def common_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` (``(B, C, H, W)``) with the larger map average-pooled to the smaller's size."""
    size = cast(tuple[int, int], min(a.shape[-2:], b.shape[-2:]))  # (H, W)
    if a.shape[-2:] != size:
        a = F.adaptive_avg_pool2d(a, size)
    if b.shape[-2:] != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b


def full_precision(tensor: torch.Tensor) -> torch.autocast:
    """A context without autocast on ``tensor``'s device: products of maps stay in float32 under bf16-mixed."""
    return torch.autocast(tensor.device.type, enabled=False)


def tap_pairs(method: str, student_layers: Sequence[str], teacher_layers: Sequence[str], least: int = 1) -> list:
    """``[(student alias, teacher alias), ...]``; a clear error when the lists differ in length."""
    if len(student_layers) != len(teacher_layers) or len(student_layers) < least:
        raise ConfigError(
            f"{method} pairs taps in order: got student_layers={list(student_layers)} and "
            f"teacher_layers={list(teacher_layers)}; give the same number (at least {least}) of each."
        )
    return list(zip(student_layers, teacher_layers, strict=True))


def paired_maps(
    pairs: list[tuple[str, str]], student: ModelOutputs, teacher: ModelOutputs
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each tap pair's student map and detached float32 teacher map, the larger pooled to the smaller."""
    for s_alias, t_alias in pairs:
        yield common_size(student.feature(s_alias), teacher.feature(t_alias).detach().float())


def connected_maps(
    pairs: list[tuple[str, str]], connectors: nn.ModuleList, student: ModelOutputs, teacher: ModelOutputs
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`paired_maps` with each student map through its pair's 1x1 conv + BN connector to the
    teacher's width (appended to ``connectors`` on the first call, so it trains with the student)."""
    for i, (f_s, f_t) in enumerate(paired_maps(pairs, student, teacher)):
        if len(connectors) == i:
            connectors.append(conv_bn(f_s.shape, f_t.shape).to(f_s.device))
        yield connectors[i](f_s).float(), f_t
