"""Batch-wise image augmentation, applied in-process to whole batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift_flip(
    images: torch.Tensor, max_shift: int = 2, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels (zero fill) and mirror half of them.

    Args:
        images: ``(B, C, H, W)`` batch.
        max_shift: largest shift in pixels along each axis.
        flip: mirror a random half of the batch horizontally.
        generator: the CPU generator to draw from (None: torch's global one).
    """
    b, _, h, w = images.shape
    if max_shift > 0:
        padded = F.pad(images, (max_shift,) * 4)
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(images.device)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(images.device)
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]
        batch = torch.arange(b, device=images.device)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
    return images.contiguous()


def seeded_view(images: torch.Tensor, view_seed: int) -> torch.Tensor:
    """The augmented view of a batch with seed ``view_seed``: a pure function of the two."""
    return random_shift_flip(images, generator=torch.Generator().manual_seed(int(view_seed)))
