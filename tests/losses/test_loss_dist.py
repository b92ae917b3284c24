"""DIST against a restatement with scalar Pearson correlations (statistics.correlation)."""

from __future__ import annotations

import statistics

import pytest
import torch

from kd.losses.dist import DISTLoss
from kd.model_outputs import ModelOutputs


def reference_dist(z_s: torch.Tensor, z_t: torch.Tensor, t: float, beta: float, gamma: float) -> float:
    p_s, p_t = torch.softmax(z_s / t, -1).tolist(), torch.softmax(z_t / t, -1).tolist()
    inter = statistics.fmean(statistics.correlation(a, b) for a, b in zip(p_s, p_t, strict=True))
    cols_s, cols_t = list(zip(*p_s, strict=True)), list(zip(*p_t, strict=True))
    intra = statistics.fmean(statistics.correlation(a, b) for a, b in zip(cols_s, cols_t, strict=True))
    return t * t * (beta * (1 - inter) + gamma * (1 - intra))


@pytest.mark.parametrize(("t", "beta", "gamma"), [(1.0, 1.0, 1.0), (4.0, 2.0, 2.0), (2.0, 1.0, 0.0)])
def test_matches_reference(t: float, beta: float, gamma: float) -> None:
    torch.manual_seed(4)
    z_s, z_t = torch.randn(6, 5) * 2, torch.randn(6, 5) * 2
    got = DISTLoss(t, beta, gamma)(ModelOutputs(z_s), ModelOutputs(z_t), None)
    assert got.item() == pytest.approx(reference_dist(z_s, z_t, t, beta, gamma), rel=1e-4)


def test_zero_on_identical_logits() -> None:
    z = torch.randn(5, 7)
    assert DISTLoss()(ModelOutputs(z), ModelOutputs(z.clone()), None).item() == pytest.approx(0, abs=1e-6)


def test_gradients_and_extreme_logits() -> None:
    z_s = torch.randn(4, 5, requires_grad=True)
    z_t = torch.randn(4, 5, requires_grad=True)
    DISTLoss(4.0)(ModelOutputs(z_s), ModelOutputs(z_t), None).backward()
    assert z_s.grad.abs().sum() > 0 and z_t.grad is None
    big = DISTLoss()(ModelOutputs(torch.randn(4, 5) * 1e4), ModelOutputs(torch.randn(4, 5).bfloat16()), None)
    assert torch.isfinite(big)
