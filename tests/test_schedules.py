"""The warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from kd.schedules import warmup_cosine


def lrs(total: int, **kwargs: float) -> list[float]:
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=total, **kwargs)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_linear_warmup_then_cosine_to_zero() -> None:
    values = lrs(100, warmup_fraction=0.1)
    assert values[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert values[10] == pytest.approx(1.0)
    assert values[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert values[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_final_fraction_and_no_warmup() -> None:
    values = lrs(50, warmup_fraction=0.0, final_lr_fraction=0.1)
    assert values[0] == pytest.approx(1.0)
    assert min(values) >= 0.1
