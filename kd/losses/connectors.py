"""Connectors: learnable maps from a student feature's width to a teacher feature's width.

Each is a function ``(student_shape, teacher_shape) -> nn.Module``; configs pick one with
``_target_`` and ``_partial_: true`` (e.g. ``kd.losses.connectors.conv_bn`` with ``kernel_size: 3``).
"""

from __future__ import annotations

import torch
from torch import nn

from kd.errors import ConfigError


def in_own_dtype(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with ``x`` cast to the dtype of the module's weights: an embedding kept in float32
    (``kd.losses.embedding``) meets a connector in float64 under ``trainer.precision=64-true``."""
    weight = next(module.parameters(), None)
    return module(x if weight is None else x.to(weight.dtype))


def _same_rank(student_shape: torch.Size, teacher_shape: torch.Size) -> None:
    if len(student_shape) != len(teacher_shape):
        raise ConfigError(
            f"feature connector: student feature has shape {tuple(student_shape)} but teacher feature "
            f"has {tuple(teacher_shape)}; no connector maps between different ranks. "
            "Pick taps of the same kind (both convolutional maps, or both vectors or sequences)."
        )


def conv_bn(student_shape: torch.Size, teacher_shape: torch.Size, kernel_size: int = 1) -> nn.Module:
    """``Conv2d(k x k, same padding) + BatchNorm2d`` for ``(B, C, H, W)`` feature maps."""
    _same_rank(student_shape, teacher_shape)
    if len(student_shape) != 4:
        raise ConfigError(
            f"feature connector conv_bn needs (B, C, H, W) maps, got shape {tuple(student_shape)}; "
            "use kd.losses.connectors.linear for vectors and sequences."
        )
    return nn.Sequential(
        nn.Conv2d(student_shape[1], teacher_shape[1], kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(teacher_shape[1]),
    )


class _ChannelLinear(nn.Module):
    """A linear map over dimension 1 of a ``(B, C, H, W)`` map."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


def linear(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """A linear map over the feature dimension: the last one of ``(B, D)`` or ``(B, L, D)``, the
    channels of ``(B, C, H, W)``."""
    _same_rank(student_shape, teacher_shape)
    if len(student_shape) == 4:
        return _ChannelLinear(student_shape[1], teacher_shape[1])
    return nn.Linear(student_shape[-1], teacher_shape[-1])


def auto(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """1x1 ``conv_bn`` for feature maps, ``linear`` for vectors and sequences."""
    _same_rank(student_shape, teacher_shape)
    if len(student_shape) == 4:
        return conv_bn(student_shape, teacher_shape, kernel_size=1)
    if len(student_shape) in (2, 3):
        return linear(student_shape, teacher_shape)
    raise ConfigError(f"feature connector: unsupported feature rank {len(student_shape)}")
