"""The warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import itertools
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
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_final_fraction_and_no_warmup() -> None:
    values = lrs(50, warmup_fraction=0.0, final_lr_fraction=0.1)
    assert values[0] == pytest.approx(1.0)
    assert min(values) >= 0.1


def test_loss_term_factors() -> None:
    from kd.schedules import LinearWarmup, StepFactor

    assert [LinearWarmup(4)(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [StepFactor([2, 4], [1.0, 0.5, 0.1])(e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError):
        StepFactor([3, 1], [1.0, 2.0, 3.0])


def test_weighted_sum_applies_weight_and_temperature_schedules() -> None:
    from kd.errors import ConfigError
    from kd.losses.ce import HardLabelCE
    from kd.losses.kd import SoftTargetKL
    from kd.losses.weighted_sum import WeightedSum
    from kd.schedules import LinearWarmup, StepFactor

    kd_term = SoftTargetKL(4.0)
    loss = WeightedSum({
        "ce": {"weight": 1.0, "fn": HardLabelCE()},
        "kd": {"weight": 2.0, "fn": kd_term,
               "schedule": {"weight": LinearWarmup(2), "temperature": StepFactor([1], [1.0, 0.5])}},
    })
    assert loss.set_epoch(0) == {"kd/weight": 1.0, "kd/temperature": 4.0}
    assert loss.weights["kd"] == 1.0 and kd_term.temperature == 4.0
    assert loss.set_epoch(3) == {"kd/weight": 2.0, "kd/temperature": 2.0}
    assert loss.needs_teacher
    with pytest.raises(ConfigError, match="schedule.gamma"):
        WeightedSum({"kd": {"weight": 1.0, "fn": SoftTargetKL(), "schedule": {"gamma": LinearWarmup(1)}}})
