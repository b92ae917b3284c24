"""MobileNetV2 for small inputs (Sandler et al., 2018; the CIFAR variant of RepDistiller's benchmark)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# (expansion, channels, blocks, stride) per stage; "T" is replaced by the expansion ratio. The ImageNet
# model's second stage has stride 2; here it has stride 1 (total stride 16 instead of 32).
STAGES: list[tuple[int | str, int, int, int]] = [(1, 16, 1, 1), ("T", 24, 2, 1), ("T", 32, 3, 2), ("T", 64, 4, 2), ("T", 96, 3, 1), ("T", 160, 3, 2), ("T", 320, 1, 1)]


def conv_bn_relu(in_channels: int, channels: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, channels, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(channels), nn.ReLU()]


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, linear 1x1 projection; residual when the shape is kept."""

    def __init__(self, in_channels: int, channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == channels
        self.conv = nn.Sequential(
            *conv_bn_relu(in_channels, hidden, 1),
            *conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class SmallMobileNetV2(nn.Module):
    """Stride-2 3x3 stem, seven stages of inverted residuals (``blocks.<i>``), 1x1 conv to 1280, linear."""

    def __init__(self, expansion: int = 6, width: float = 0.5, in_chans: int = 3, num_classes: int = 100) -> None:
        super().__init__()
        in_channels = int(32 * width)
        self.conv1 = nn.Sequential(*conv_bn_relu(in_chans, in_channels, 3, 2))
        stages = []
        for ratio, channels, blocks, stride in STAGES:
            channels = int(channels * width)
            ratio = expansion if ratio == "T" else cast(int, ratio)
            layers = []
            for i in range(blocks):
                layers.append(InvertedResidual(in_channels, channels, stride if i == 0 else 1, ratio))
                in_channels = channels
            stages.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*stages)
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*conv_bn_relu(in_channels, last, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.blocks(self.conv1(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def small_mobilenetv2(expansion: int = 6, width: float = 0.5, in_chans: int = 3, num_classes: int = 100) -> SmallMobileNetV2:
    """MobileNetV2 with expansion ratio T and width multiplier; (6, 0.5) is the benchmarks' "MobileNetV2"."""
    return SmallMobileNetV2(expansion, width, in_chans, num_classes)
