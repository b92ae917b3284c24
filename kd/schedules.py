"""Learning-rate schedules built from ``(optimizer, total_steps)``, stepped once per batch."""

from __future__ import annotations

import math

import torch

from kd.errors import ConfigError


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


class LinearWarmup:
    """Loss-term factor ``min((epoch + 1) / epochs, 1)`` (0-based epochs): ``1/epochs`` in the first
    epoch, 1 from epoch ``epochs - 1`` on; DKD's warm-up of its distillation weight.

    Args:
        epochs: length of the warm-up in epochs (>= 1).
    """

    def __init__(self, epochs: int) -> None:
        if epochs < 1:
            raise ConfigError(f"warm-up epochs must be >= 1, got {epochs}")
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        return min((epoch + 1) / self.epochs, 1.0)


class StepFactor:
    """Loss-term factor that changes at epoch milestones: ``factors[i]`` from ``milestones[i-1]`` on.

    Args:
        milestones: increasing epochs (0-based) at which the next factor starts.
        factors: one more value than ``milestones``; ``factors[0]`` applies before the first.
    """

    def __init__(self, milestones: list[int], factors: list[float]) -> None:
        if len(factors) != len(milestones) + 1 or list(milestones) != sorted(milestones):
            raise ConfigError(f"need increasing milestones and one more factor: {milestones}, {factors}")
        self.milestones, self.factors = list(milestones), [float(f) for f in factors]

    def __call__(self, epoch: int) -> float:
        return self.factors[sum(epoch >= m for m in self.milestones)]
