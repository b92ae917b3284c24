"""Shared helpers of the feature-map losses: equal spatial sizes, paired taps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kd.errors import ConfigError


def common_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` (``(B, C, H, W)``) with the larger map average-pooled to the smaller's size."""
    size = min(a.shape[-2:], b.shape[-2:])
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
