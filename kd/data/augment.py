"""Batch-wise image augmentation: a list of transforms (``data.module.augment``), applied in order to
whole batches in-process.

A transform is a :class:`Transform` with ``__call__(images, generator)`` that draws every random number
from ``generator``, so a batch's view is a pure function of the batch and its ``view_seed``
(:func:`seeded_view`; the teacher's logits on those views are cached and replayed, docs/teacher_cache.md).
Its constructor's arguments, kept as attributes of the same names, are its config:
``{_target_: kd.data.augment.HorizontalFlip, p: 0.5}``. Adding a transform is one class, here or in any
module (docs/images.md).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok or isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be {allowed}")


def _share(name: str, value: Any) -> float:
    _check(isinstance(value, int | float) and 0 <= value <= 1, name, value, "a number between 0 and 1")
    return float(value)


class Transform:
    """One augmentation step on a ``(B, C, H, W)`` batch. A subclass keeps each constructor argument as an
    attribute of the same name, checked in the constructor (a ValueError naming the argument)."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The transformed batch; random draws come from ``generator`` (a CPU one; None: torch's global)."""
        raise NotImplementedError

    def description(self) -> dict[str, Any]:
        """The transform as a config: its ``_target_`` and every argument (defaults included)."""
        target = f"{type(self).__module__}.{type(self).__qualname__}"
        names = inspect.signature(type(self)).parameters
        return {"_target_": target, **{name: getattr(self, name) for name in names}}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.description().items() if k != "_target_")
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and self.description() == other.description()

    def __hash__(self) -> int:
        return hash(repr(self))


class RandomShift(Transform):
    """Shift each image by up to ``pixels`` pixels along each axis (uniform), filling with zeros."""

    def __init__(self, pixels: int = 2) -> None:
        _check(isinstance(pixels, int) and pixels >= 0, "pixels", pixels, "an integer >= 0")
        self.pixels = pixels

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.pixels == 0:  # draws nothing
            return images
        b, _, h, w = images.shape
        device, span = images.device, 2 * self.pixels + 1
        padded = F.pad(images, (self.pixels,) * 4)
        dy = torch.randint(0, span, (b,), generator=generator).to(device)
        dx = torch.randint(0, span, (b,), generator=generator).to(device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, :]
        batch = torch.arange(b, device=device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _mirror(images: torch.Tensor, generator: torch.Generator | None, p: float, dim: int) -> torch.Tensor:
    """Each image flipped along ``dim`` with probability ``p`` (one draw per image)."""
    mirror = (torch.rand(images.shape[0], generator=generator) < p).to(images.device)
    return torch.where(mirror[:, None, None, None], images.flip(dim), images)


class HorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _share("p", p)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return _mirror(images, generator, self.p, -1)


class VerticalFlip(Transform):
    """Mirror each image top-bottom with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _share("p", p)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return _mirror(images, generator, self.p, -2)


class RandomErasing(Transform):
    """With probability ``p``, set a random rectangle of each image to ``value``; its height and width
    are each up to ``max_size`` of the image's (at least one pixel), its place uniform."""

    def __init__(self, p: float = 0.5, max_size: float = 0.5, value: float = 0.0) -> None:
        _check(isinstance(max_size, int | float) and 0 < max_size <= 1, "max_size", max_size, "a number > 0 and <= 1")
        _check(isinstance(value, int | float) and math.isfinite(value), "value", value, "a finite number")
        self.p, self.max_size, self.value = _share("p", p), float(max_size), float(value)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, _, h, w = images.shape
        erase = torch.rand(b, generator=generator) < self.p
        masks = []
        for side in (h, w):
            length = (torch.rand(b, generator=generator) * self.max_size * side).ceil().clamp(1, side).long()
            start = (torch.rand(b, generator=generator) * (side - length + 1)).long()
            at = torch.arange(side)[None]
            masks.append((at >= start[:, None]) & (at < (start + length)[:, None]))
        mask = masks[0][:, :, None] & masks[1][:, None, :] & erase[:, None, None]
        return images.masked_fill(mask[:, None].to(images.device), self.value)


class BrightnessContrast(Transform):
    """Scale each image's deviations from its mean by a factor in ``[1 - contrast, 1 + contrast]`` and add
    an offset in ``[-brightness, brightness]`` (both uniform; in the inputs' units, i.e. standard deviations
    of normalised images)."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2) -> None:
        _check(isinstance(brightness, int | float) and 0 <= brightness < math.inf, "brightness", brightness,
               "a finite number >= 0")
        self.brightness, self.contrast = float(brightness), _share("contrast", contrast)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = images.shape[0]
        factor = 1 + self.contrast * (2 * torch.rand(b, generator=generator) - 1)
        offset = self.brightness * (2 * torch.rand(b, generator=generator) - 1)
        factor, offset = (t.to(images.device, images.dtype)[:, None, None, None] for t in (factor, offset))
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * factor + mean + offset


def apply(transforms: Sequence[Transform], images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``images`` through ``transforms`` in order, all drawing from ``generator``."""
    for transform in transforms:
        images = transform(images, generator)
    return images.contiguous()


def seeded_view(images: torch.Tensor, view_seed: int, transforms: Sequence[Transform]) -> torch.Tensor:
    """The augmented view of a batch with seed ``view_seed``: a pure function of the batch, the seed and
    the transforms."""
    return apply(transforms, images, torch.Generator().manual_seed(int(view_seed)))
