"""Learning-rate schedules built from ``(optimizer, total_steps)``, stepped once per batch."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    final_lr_fraction: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay.

    Args:
        optimizer: the optimiser whose learning rates are scaled.
        total_steps: number of optimisation steps in the whole run.
        warmup_fraction: share of ``total_steps`` spent warming up from 0.
        final_lr_fraction: learning rate at the end, as a fraction of the peak.
    """
    total = max(int(total_steps), 1)
    warmup = int(warmup_fraction * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return final_lr_fraction + (1.0 - final_lr_fraction) * cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
