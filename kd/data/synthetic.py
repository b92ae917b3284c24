"""A small learnable synthetic image set for tests: one fixed template per class plus noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kd.data.batches import IndexedTensors


class SyntheticImages:
    """Images ``template[label] + noise * N(0, 1)``; generated, never read from disk.

    Templates are smooth (random 4x4 patterns upsampled), so that strided CNNs can tell the classes
    apart after their stems downsample.

    Args:
        num_classes: number of classes (and templates).
        input_shape: ``(C, H, W)`` of each image.
        train_size: training images.
        val_size: validation images.
        test_size: test images.
        noise: standard deviation of the per-pixel noise; larger is harder.
        seed: seed of the templates and samples.
    """

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        train_size: int = 512,
        val_size: int = 128,
        test_size: int = 128,
        noise: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.noise, self.seed = noise, seed

    def prepare(self) -> None:
        """Nothing to fetch."""

    def load(self) -> dict[str, IndexedTensors]:
        """Generate the ``train``, ``val`` and ``test`` splits."""
        gen = torch.Generator().manual_seed(self.seed)
        channels, height, width = self.input_shape
        coarse = torch.randn(self.num_classes, channels, 4, 4, generator=gen)
        templates = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        splits = {}
        for name, size in self.sizes.items():
            labels = torch.randint(0, self.num_classes, (size,), generator=gen)
            noise = torch.randn(size, *self.input_shape, generator=gen)
            splits[name] = IndexedTensors(templates[labels] + self.noise * noise, labels)
        return splits
