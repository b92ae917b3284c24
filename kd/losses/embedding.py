"""Per-sample embeddings from tapped features, shared by the relation-based losses."""

from __future__ import annotations

import torch


def pooled_embedding(feature: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` embeddings: feature maps ``(B, C, H, W)`` and sequences ``(B, L, C)`` are averaged
    over their spatial or token positions; vectors pass through. Computed in float32."""
    feature = feature.float()
    if feature.dim() == 4:
        return feature.mean(dim=(2, 3))
    if feature.dim() == 3:
        return feature.mean(dim=1)
    return feature.flatten(1)
