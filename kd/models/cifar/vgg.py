"""VGG with batch norm for small inputs (Simonyan & Zisserman, 2015, as in RepDistiller): vgg8, vgg11, vgg13."""

from __future__ import annotations

import torch
from torch import nn

# Convolution widths of the five blocks (vgg8 = "S": one convolution per block; vgg13 = "B").
WIDTHS = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def conv_block(in_channels: int, widths: list[int]) -> nn.Sequential:
    """3x3 conv + BN (+ ReLU between convolutions); the block ends at a BN, before its ReLU."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class SmallVGG(nn.Module):
    """Five conv blocks with 2x2 max-pooling after the first three, global pooling, one linear layer."""

    def __init__(self, depth: int, in_chans: int = 3, num_classes: int = 100) -> None:
        super().__init__()
        if depth not in WIDTHS:
            raise ValueError(f"depth must be one of {sorted(WIDTHS)}, got {depth}")
        widths = WIDTHS[depth]
        self.block0 = conv_block(in_chans, widths[0])
        self.block1 = conv_block(widths[0][-1], widths[1])
        self.block2 = conv_block(widths[1][-1], widths[2])
        self.block3 = conv_block(widths[2][-1], widths[3])
        self.block4 = conv_block(widths[3][-1], widths[4])
        self.pool = nn.MaxPool2d(2)
        # one ReLU module per block: tap ``block<i>`` for pre-activation, ``relu<i>`` for the activation
        self.relu0, self.relu1, self.relu2, self.relu3, self.relu4 = (nn.ReLU() for _ in range(5))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[4][-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                assert module.bias is not None  # the convs above keep their bias
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu0(self.block0(x)))
        x = self.pool(self.relu1(self.block1(x)))
        x = self.pool(self.relu2(self.block2(x)))
        x = self.relu3(self.block3(x))
        x = self.relu4(self.block4(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def small_vgg(depth: int, in_chans: int = 3, num_classes: int = 100) -> SmallVGG:
    """vgg<depth>_bn for 28-32 px inputs, e.g. vgg8: (8,), vgg13: (13,)."""
    return SmallVGG(depth, in_chans, num_classes)
