"""Similarity-preserving KD against an element-wise restatement of the paper's formula."""

from __future__ import annotations

import math

import pytest
import torch

from kd.losses.similarity import SimilarityPreserving
from kd.model_outputs import ModelOutputs


def outputs(**features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(2, 3), features=features)


def reference_sp(f_s: torch.Tensor, f_t: torch.Tensor) -> float:
    b = f_s.shape[0]
    a_s, a_t = f_s.reshape(b, -1).tolist(), f_t.reshape(b, -1).tolist()

    def normalised_gram(rows: list[list[float]]) -> list[list[float]]:
        gram = [[sum(x * y for x, y in zip(r, q, strict=True)) for q in rows] for r in rows]
        return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in gram]

    g_s, g_t = normalised_gram(a_s), normalised_gram(a_t)
    return sum((g_s[i][j] - g_t[i][j]) ** 2 for i in range(b) for j in range(b)) / b**2


def test_matches_reference_across_widths_and_sizes() -> None:
    torch.manual_seed(2)
    f_s, f_t = torch.randn(4, 3, 2, 2), torch.randn(4, 7, 3, 3)
    got = SimilarityPreserving("a", "b")(outputs(a=f_s), outputs(b=f_t), None)
    assert got.item() == pytest.approx(reference_sp(f_s, f_t), rel=1e-5)


def test_zero_for_identical_and_for_rescaled_features() -> None:
    f = torch.randn(5, 8)
    sp = SimilarityPreserving("a", "b")
    assert sp(outputs(a=f), outputs(b=f.clone()), None).item() == pytest.approx(0, abs=1e-7)
    assert sp(outputs(a=f), outputs(b=3 * f), None).item() == pytest.approx(0, abs=1e-7)  # row norm removes scale


def test_gradients_reach_student_only_and_extremes_are_finite() -> None:
    f_s = torch.randn(3, 4, requires_grad=True)
    f_t = torch.randn(3, 6, requires_grad=True)
    SimilarityPreserving("a", "b")(outputs(a=f_s), outputs(b=f_t), None).backward()
    assert f_s.grad.abs().sum() > 0 and f_t.grad is None
    big = SimilarityPreserving("a", "b")(outputs(a=f_s.detach().bfloat16() * 1e4), outputs(b=f_t.bfloat16()), None)
    assert torch.isfinite(big)
