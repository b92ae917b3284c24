"""CIFAR ResNets (He et al., 2016, section 4.2): resnet8 ... resnet110, resnet8x4, resnet32x4."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, and a 1x1 projection shortcut where the shape changes."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class CifarResNet(nn.Module):
    """3x3 stem at full resolution, three stages of (depth - 2) / 6 basic blocks (strides 1, 2, 2)."""

    def __init__(self, depth: int, widths: list[int], in_chans: int = 3, num_classes: int = 100) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        if len(widths) != 4:
            raise ValueError(f"widths must hold 4 numbers (stem and 3 stages), got {list(widths)}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages, in_channels = [], widths[0]
        for stage, channels in enumerate(widths[1:]):
            stride = 1 if stage == 0 else 2
            layers = [BasicBlock(in_channels if i == 0 else channels, channels, stride if i == 0 else 1) for i in range(blocks)]
            stages.append(nn.Sequential(*layers))
            in_channels = channels
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(depth: int, widths: list[int], in_chans: int = 3, num_classes: int = 100) -> CifarResNet:
    """resnet<depth> with stem/stage widths, e.g. (20, [16, 16, 32, 64]) or resnet8x4: (8, [32, 64, 128, 256])."""
    return CifarResNet(depth, list(widths), in_chans, num_classes)
