"""Attention transfer against a per-sample restatement of the formula."""

from __future__ import annotations

import pytest
import torch

from kd.errors import ConfigError
from kd.losses.attention import AttentionTransfer
from kd.model_outputs import ModelOutputs


def outputs(**features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(2, 3), features=features)


def reference_at(f_s: torch.Tensor, f_t: torch.Tensor, p: float = 2.0) -> float:
    total = 0.0
    for s, t in zip(f_s, f_t, strict=True):  # one sample at a time
        q_s = (s.abs() ** p).sum(0).flatten() / s.shape[0]
        q_t = (t.abs() ** p).sum(0).flatten() / t.shape[0]
        a_s, a_t = q_s / q_s.norm(), q_t / q_t.norm()
        total += ((a_s - a_t) ** 2).sum().item()
    return total / (f_s.shape[0] * f_s.shape[2] * f_s.shape[3])


def test_matches_reference_on_fixed_tensors() -> None:
    torch.manual_seed(1)
    f_s, f_t = torch.randn(3, 4, 5, 5), torch.randn(3, 16, 5, 5)
    got = AttentionTransfer(["a"], ["b"])(outputs(a=f_s), outputs(b=f_t), None)
    assert got.item() == pytest.approx(reference_at(f_s, f_t), rel=1e-5)


def test_zero_when_attention_maps_agree_even_with_other_widths() -> None:
    f = torch.randn(2, 4, 6, 6)
    same = torch.cat([f, f], dim=1)  # other channel count, same mean of squares
    assert AttentionTransfer(["a"], ["b"])(outputs(a=f), outputs(b=same), None).item() == pytest.approx(0, abs=1e-7)


def test_pools_the_larger_map_and_sums_pairs_as_repdistiller() -> None:
    f_s, f_t = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    g_s, g_t = torch.randn(2, 4, 2, 2), torch.randn(2, 6, 2, 2)
    got = AttentionTransfer(["a", "c"], ["b", "d"])(outputs(a=f_s, c=g_s), outputs(b=f_t, d=g_t), None)
    pooled = torch.nn.functional.adaptive_avg_pool2d(f_s, (4, 4))
    # RepDistiller: loss_kd = sum(criterion_kd(g_s, g_t)), one mean-squared term per pair, weight 1000
    assert got.item() == pytest.approx(reference_at(pooled, f_t) + reference_at(g_s, g_t), rel=1e-5)


def test_gradients_reach_student_not_teacher_and_bf16_is_finite() -> None:
    f_s = torch.randn(2, 3, 4, 4, requires_grad=True)
    f_t = torch.randn(2, 3, 4, 4, requires_grad=True)
    AttentionTransfer(["a"], ["b"])(outputs(a=f_s), outputs(b=f_t), None).backward()
    assert f_s.grad.abs().sum() > 0 and f_t.grad is None
    value = AttentionTransfer(["a"], ["b"])(outputs(a=f_s.bfloat16() * 1e4), outputs(b=f_t.bfloat16()), None)
    assert torch.isfinite(value)


def test_unpaired_layers_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pairs taps in order"):
        AttentionTransfer(["a", "b"], ["c"])
