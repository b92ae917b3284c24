"""MLKD against a per-sample, per-pair restatement of its three levels."""

from __future__ import annotations

import math

import pytest
import torch

from kd.losses.mlkd import MultiLevelLogit
from kd.model_outputs import ModelOutputs


def softmax(row: list[float], t: float) -> list[float]:
    top = max(row)
    e = [math.exp((v - top) / t) for v in row]
    return [v / sum(e) for v in e]


def median(values: list[float]) -> float:
    s, n = sorted(values), len(values)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def reference(z_s: torch.Tensor, z_t: torch.Tensor, temperatures: list[float]) -> float:
    zs, zt = z_s.tolist(), z_t.tolist()
    b, c = len(zs), len(zs[0])
    p1 = [softmax(r, 1.0) for r in zt]
    confidence = [max(p) for p in p1]
    m = [1.0 if v <= median(confidence) else 0.0 for v in confidence]
    mass = [sum(p1[i][k] for i in range(b)) for k in range(c)]
    cm = [1.0 if v <= median(mass) else 0.0 for v in mass]
    total = 0.0
    for t in temperatures:
        ps, pt = [softmax(r, t) for r in zs], [softmax(r, t) for r in zt]
        total += sum(m[i] * t * t * sum(pt[i][k] * math.log(pt[i][k] / ps[i][k]) for k in range(c)) for i in range(b)) / b
        for i in range(b):  # sample similarities, masked by the column's sample
            for j in range(b):
                d = sum(pt[i][k] * pt[j][k] for k in range(c)) - sum(ps[i][k] * ps[j][k] for k in range(c))
                total += m[j] * d * d / b / (b * b)
        for k in range(c):  # class correlations, masked by the column's class
            for k2 in range(c):
                d = sum(pt[i][k] * pt[i][k2] for i in range(b)) - sum(ps[i][k] * ps[i][k2] for i in range(b))
                total += cm[k2] * d * d / c / (c * c)
    return total


def outputs(z: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=z)


@pytest.mark.parametrize("batch", [5, 6])  # odd and even: the median of an even count interpolates
def test_matches_the_per_pair_reference(batch: int) -> None:
    torch.manual_seed(batch)
    z_s, z_t = torch.randn(batch, 4) * 2, torch.randn(batch, 4) * 3
    got = MultiLevelLogit([4.0, 2.0])(outputs(z_s), outputs(z_t), None)
    assert got.item() == pytest.approx(reference(z_s, z_t, [4.0, 2.0]), rel=1e-5)


def test_zero_for_equal_logits_and_gradients_reach_the_student() -> None:
    z_t = torch.tensor([[9.0, 0.0, 0.0], [0.1, 0.0, 0.2], [0.0, 8.0, 0.0], [0.3, 0.2, 0.1]])
    term = MultiLevelLogit([1.0])
    assert term(outputs(z_t.clone()), outputs(z_t), None).item() == pytest.approx(0, abs=1e-6)
    z_s = torch.randn(4, 3, requires_grad=True)
    term(outputs(z_s), outputs(z_t.requires_grad_()), None).backward()
    assert z_s.grad.abs().sum() > 0 and z_t.grad is None
