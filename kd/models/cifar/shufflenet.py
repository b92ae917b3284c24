"""ShuffleNetV1 (Zhang et al., 2018) and V2 (Ma et al., 2018) for small inputs, as in RepDistiller's benchmark."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def shuffle_channels(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def conv_bn(in_channels: int, channels: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, channels, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(channels))


class V1Unit(nn.Module):
    """Grouped 1x1, shuffle, 3x3 depthwise, grouped 1x1; stride 2 concatenates an average-pooled input."""

    def __init__(self, in_channels: int, channels: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = channels // 4
        self.first_groups = 1 if in_channels == 24 else groups   # the stem's 24 channels are not grouped
        self.stride = stride
        self.reduce = conv_bn(in_channels, mid, groups=self.first_groups)
        self.depthwise = conv_bn(mid, mid, 3, stride, groups=mid)
        self.expand = conv_bn(mid, channels, groups=groups)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = shuffle_channels(F.relu(self.reduce(x)), self.first_groups)
        out = self.expand(F.relu(self.depthwise(out)))
        if self.stride == 2:
            return self.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return self.relu(out + x)


class V2Unit(nn.Module):
    """Half the channels pass through, the other half run 1x1 - 3x3 depthwise - 1x1; then shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1, self.conv2, self.conv3 = conv_bn(half, half), conv_bn(half, half, 3, groups=half), conv_bn(half, half)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, branch = x.chunk(2, dim=1)
        branch = self.relu(self.conv3(self.conv2(F.relu(self.conv1(branch)))))
        return shuffle_channels(torch.cat([kept, branch], 1), 2)


class V2DownUnit(nn.Module):
    """Both branches downsample (3x3 depthwise stride 2) and each yields half the output channels."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.left = nn.Sequential(conv_bn(in_channels, in_channels, 3, 2, groups=in_channels), conv_bn(in_channels, half))
        self.right = nn.Sequential(conv_bn(in_channels, half), nn.ReLU(), conv_bn(half, half, 3, 2, groups=half), conv_bn(half, half))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shuffle_channels(torch.cat([self.relu(self.left(x)), self.relu(self.right(x))], 1), 2)


class SmallShuffleNet(nn.Module):
    """1x1 stem (24 channels, full resolution), three stages ``layer1..3`` (stride 2 each), linear head."""

    def __init__(self, version: int, in_chans: int = 3, num_classes: int = 100) -> None:
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version}")
        self.conv1 = nn.Conv2d(in_chans, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.relu = nn.ReLU()
        stages, in_channels = [], 24
        if version == 1:   # groups 3: widths 240, 480, 960; 4, 8, 4 units
            for channels, units in ((240, 4), (480, 8), (960, 4)):
                layers = [V1Unit(in_channels, channels - in_channels, 2, 3)]
                layers += [V1Unit(channels, channels, 1, 3) for _ in range(units - 1)]
                stages.append(nn.Sequential(*layers))
                in_channels = channels
            self.head: nn.Module = nn.Identity()
        else:              # 1x: widths 116, 232, 464, a 1024-wide 1x1 conv; 3, 7, 3 units after each down unit
            for channels, units in ((116, 3), (232, 7), (464, 3)):
                stages.append(nn.Sequential(V2DownUnit(in_channels, channels), *(V2Unit(channels) for _ in range(units))))
                in_channels = channels
            self.head = nn.Sequential(conv_bn(in_channels, 1024), nn.ReLU())
            in_channels = 1024
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.head(self.layer3(self.layer2(self.layer1(x))))
        return self.linear(torch.flatten(self.avgpool(x), 1))


def small_shufflenet(version: int, in_chans: int = 3, num_classes: int = 100) -> SmallShuffleNet:
    """ShuffleNetV1 (groups 3) or ShuffleNetV2 (1x) as benchmarked on CIFAR-100."""
    return SmallShuffleNet(version, in_chans, num_classes)
