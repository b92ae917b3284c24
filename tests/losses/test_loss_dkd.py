"""Decoupled KD against a per-sample restatement that removes the target column explicitly."""

from __future__ import annotations

import math

import pytest
import torch

from kd.losses.dkd import DecoupledKD
from kd.losses.kd import SoftTargetKL
from kd.model_outputs import ModelOutputs


def softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def reference_dkd(z_s: torch.Tensor, z_t: torch.Tensor, y: torch.Tensor, t: float, tckd: float, nckd: float) -> float:
    total = 0.0
    for s, te, label in zip(z_s.tolist(), z_t.tolist(), y.tolist(), strict=True):
        p_s, p_t = softmax([v / t for v in s]), softmax([v / t for v in te])
        b_s, b_t = [p_s[label], 1 - p_s[label]], [p_t[label], 1 - p_t[label]]
        rest_s = softmax([v / t for i, v in enumerate(s) if i != label])
        rest_t = softmax([v / t for i, v in enumerate(te) if i != label])
        total += tckd * kl(b_t, b_s) + nckd * kl(rest_t, rest_s)
    return t * t * total / len(y)


@pytest.mark.parametrize(("t", "tckd_w", "nckd_w"), [(4.0, 1.0, 8.0), (1.0, 0.5, 2.0), (2.0, 0.0, 1.0)])
def test_matches_reference(t: float, tckd_w: float, nckd_w: float) -> None:
    torch.manual_seed(3)
    z_s, z_t, y = torch.randn(6, 5) * 2, torch.randn(6, 5) * 3, torch.randint(0, 5, (6,))
    got = DecoupledKD(temperature=t, tckd_weight=tckd_w, nckd_weight=nckd_w)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert got.item() == pytest.approx(reference_dkd(z_s, z_t, y, t, tckd_w, nckd_w), rel=1e-5)


def test_zero_on_identical_logits_and_t_squared_scaling() -> None:
    z, y = torch.randn(4, 6), torch.randint(0, 6, (4,))
    assert DecoupledKD()(ModelOutputs(z), ModelOutputs(z.clone()), y).item() == pytest.approx(0, abs=1e-6)
    z_s, z_t = torch.randn(4, 6), torch.randn(4, 6)
    one = DecoupledKD(temperature=2.0, tckd_weight=1.0, nckd_weight=0.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert one.item() == pytest.approx(reference_dkd(z_s, z_t, y, 2.0, 1.0, 0.0), rel=1e-5)


def test_tckd_plus_nckd_decomposes_kd_when_weights_are_the_target_probability() -> None:
    # The paper's identity: KD = TCKD + (1 - p_t(target)) * NCKD, sample by sample.
    z_s, z_t, y = torch.randn(1, 5), torch.randn(1, 5), torch.tensor([2])
    p_not_target = 1 - torch.softmax(z_t, -1)[0, 2].item()
    term = DecoupledKD(temperature=1.0, tckd_weight=1.0, nckd_weight=p_not_target)
    dkd = term(ModelOutputs(z_s), ModelOutputs(z_t), y)
    kd = SoftTargetKL(temperature=1.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert dkd.item() == pytest.approx(kd.item(), rel=1e-5)


def test_extreme_logits_bf16_and_gradients() -> None:
    z_s = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]], requires_grad=True)
    z_t = torch.tensor([[-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]], requires_grad=True)
    y = torch.tensor([0, 2])
    value = DecoupledKD(1.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(z_s.grad).all() and z_t.grad is None
    bf16 = DecoupledKD()(ModelOutputs(torch.randn(3, 4).bfloat16()), ModelOutputs(torch.randn(3, 4).bfloat16()),
                         torch.tensor([0, 1, 2]))
    assert torch.isfinite(bf16)


def test_defaults_are_the_paper_weights() -> None:
    dkd = DecoupledKD()
    assert (dkd.temperature, dkd.tckd_weight, dkd.nckd_weight) == (4.0, 1.0, 8.0)
    assert not hasattr(dkd, "alpha") and not hasattr(dkd, "beta")


