"""Wide residual networks WRN-d-w (Zagoruyko & Komodakis, 2016): wrn_16_2, wrn_40_1, wrn_40_2."""

from __future__ import annotations

import torch
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; a 1x1 shortcut on the pre-activated input where the width changes."""

    def __init__(self, in_channels: int, channels: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.shortcut = None if in_channels == channels else nn.Conv2d(in_channels, channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """3x3 stem (16 channels), three stages of (depth - 4) / 6 blocks with widths 16w, 32w, 64w."""

    def __init__(
        self, depth: int, width: float, in_chans: int = 3, num_classes: int = 100, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40), got {depth}")
        blocks = (depth - 4) // 6
        widths = [16, int(16 * width), int(32 * width), int(64 * width)]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        stages, in_channels = [], widths[0]
        for stage, channels in enumerate(widths[1:]):
            stride = 1 if stage == 0 else 2
            layers = [
                PreActBlock(in_channels if i == 0 else channels, channels, stride if i == 0 else 1, dropout)
                for i in range(blocks)
            ]
            stages.append(nn.Sequential(*layers))
            in_channels = channels
        self.block1, self.block2, self.block3 = stages
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def wide_resnet(depth: int, width: float, in_chans: int = 3, num_classes: int = 100, dropout: float = 0.0) -> WideResNet:
    """WRN-depth-width, e.g. wrn_40_2: (40, 2)."""
    return WideResNet(depth, width, in_chans, num_classes, dropout)
