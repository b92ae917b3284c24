"""Per-sample embeddings from tapped features, shared by the relation-based losses."""

from __future__ import annotations

import torch

from kd.model_outputs import ModelOutputs


def pooled_embedding(feature: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, D)`` embeddings in float32: feature maps ``(B, C, H, W)`` are averaged over positions,
    sequences ``(B, L, D)`` over their tokens (only where ``mask`` is 1, when given); vectors pass."""
    feature = feature.float()
    if feature.dim() == 4:
        return feature.mean(dim=(2, 3))
    if feature.dim() == 3:
        if mask is None:
            return feature.mean(dim=1)
        weights = mask.to(feature.dtype).unsqueeze(-1)
        return (feature * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    return feature.flatten(1)


def tap_embedding(outputs: ModelOutputs, alias: str) -> torch.Tensor:
    """The pooled embedding of tap ``alias`` (padding tokens excluded)."""
    return pooled_embedding(outputs.feature(alias), outputs.mask)
