"""Hidden-state and MiniLM attention losses against loop restatements; masking and layer maps."""

from __future__ import annotations

import math

import pytest
import torch

from kd.errors import ConfigError
from kd.losses.attention_kl import AttentionKL
from kd.losses.hidden_state import HiddenStateDistance
from kd.losses.layer_map import uniform_layer_map
from kd.model_outputs import ModelOutputs


def outputs(mask: torch.Tensor | None = None, **features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(2, 2), features=features, mask=mask)


def test_uniform_layer_map_follows_tinybert() -> None:
    assert uniform_layer_map(["hidden1", "hidden2", "embedding"], [f"hidden{i}" for i in range(1, 7)], "hidden") == {
        "hidden1": "hidden3", "hidden2": "hidden6"}
    assert uniform_layer_map(["hidden1", "hidden2", "hidden3"], [f"hidden{i}" for i in range(1, 7)], "hidden") == {
        "hidden1": "hidden2", "hidden2": "hidden4", "hidden3": "hidden6"}
    assert uniform_layer_map(["hidden1"], ["hidden1", "hidden2", "hidden10"], "hidden") == {"hidden1": "hidden10"}
    with pytest.raises(ConfigError, match="loss.layer_map"):
        uniform_layer_map(["stage4"], ["hidden1"], "hidden")
    with pytest.raises(ConfigError, match=r"needs teacher taps \['hidden3'\]"):
        uniform_layer_map(["hidden1", "hidden2"], ["hidden6"], "hidden")


def reference_masked_mse(h_s: list, h_t: list, mask: list) -> float:
    total, count = 0.0, 0
    for b in range(len(h_s)):
        for i in range(len(h_s[b])):
            if mask[b][i]:
                total += sum((x - y) ** 2 for x, y in zip(h_s[b][i], h_t[b][i], strict=True)) / len(h_s[b][i])
                count += 1
    return total / count


def test_hidden_mse_and_cosine_match_references_on_real_tokens_only() -> None:
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    s1, s2, t3, t6 = (torch.randn(2, 4, 3) for _ in range(4))
    student, teacher = outputs(mask, hidden1=s1, hidden2=s2), outputs(mask, hidden3=t3, hidden6=t6, hidden1=t3)
    loss = HiddenStateDistance()
    got = loss(student, teacher, None)
    assert loss.layer_map == {"hidden1": "hidden3", "hidden2": "hidden6"} and not loss.projections
    expected = (reference_masked_mse(s1.tolist(), t3.tolist(), mask.tolist())
                + reference_masked_mse(s2.tolist(), t6.tolist(), mask.tolist())) / 2
    assert got.item() == pytest.approx(expected, rel=1e-5)
    padded = outputs(mask, hidden1=s1.clone(), hidden2=s2.clone())
    padded.features["hidden1"][0, 3] += 100.0  # a padding position: must not count
    assert loss(padded, teacher, None).item() == pytest.approx(expected, rel=1e-5)

    cosine = HiddenStateDistance(layer_map={"hidden2": "hidden6"}, distance="cosine")
    per_token = [1 - sum(a * b for a, b in zip(u, v, strict=True)) / math.hypot(*u) / math.hypot(*v)
                 for row_s, row_t, m in zip(s2.tolist(), t6.tolist(), mask.tolist(), strict=True)
                 for u, v, keep in zip(row_s, row_t, m, strict=True) if keep]
    assert cosine(student, teacher, None).item() == pytest.approx(sum(per_token) / len(per_token), rel=1e-5)
    assert cosine(outputs(mask, hidden2=3 * t6), teacher, None).item() == pytest.approx(0, abs=1e-6)


def test_hidden_projection_is_learned_when_widths_differ() -> None:
    h_s = torch.randn(2, 5, 4, requires_grad=True)
    teacher = outputs(None, hidden1=torch.randn(2, 5, 6), hidden2=torch.randn(2, 5, 6, requires_grad=True))
    loss = HiddenStateDistance(layer_map={"hidden1": "hidden2"})
    loss(outputs(None, hidden1=h_s), teacher, None).backward()
    projection = loss.projections["hidden1"]
    assert projection.weight.shape == (6, 4) and projection.weight.grad.abs().sum() > 0
    assert h_s.grad.abs().sum() > 0 and teacher.features["hidden2"].grad is None
    with pytest.raises(ConfigError, match="distance"):
        HiddenStateDistance(distance="l1")


def reference_attention_kl(a_s: list, a_t: list, mask: list) -> float:
    total, count = 0.0, 0
    for b in range(len(a_s)):
        for q in range(len(mask[b])):
            if not mask[b][q]:
                continue
            heads = len(a_s[b])
            kl = sum(pt * math.log(pt / ps) for h in range(heads)
                     for pt, ps in zip(a_t[b][h][q], a_s[b][h][q], strict=True) if pt > 0) / heads
            total, count = total + kl, count + 1
    return total / count


def attention(batch: int, heads: int, mask: torch.Tensor) -> torch.Tensor:
    scores = torch.randn(batch, heads, mask.shape[1], mask.shape[1])
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    return scores.softmax(-1)


def test_attention_kl_matches_reference_and_ignores_padding() -> None:
    torch.manual_seed(1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    a_s, a_t = attention(2, 3, mask), attention(2, 3, mask)
    student, teacher = outputs(mask, attn1=a_s, attn2=a_s), outputs(mask, attn6=a_t)
    got = AttentionKL()(student, teacher, None)  # last attn<i> taps: attn2 and attn6
    assert got.item() == pytest.approx(reference_attention_kl(a_s.tolist(), a_t.tolist(), mask.tolist()), rel=1e-5)
    assert AttentionKL()(outputs(mask, attn1=a_t), teacher, None).item() == pytest.approx(0, abs=1e-6)
    assert torch.isfinite(got)


def test_attention_heads_must_match_unless_averaged() -> None:
    mask = torch.ones(2, 4, dtype=torch.long)
    a_s = attention(2, 2, mask).requires_grad_()
    a_t = attention(2, 4, mask)
    with pytest.raises(ConfigError, match="loss.heads=mean"):
        AttentionKL()(outputs(mask, attn1=a_s), outputs(mask, attn2=a_t), None)
    got = AttentionKL(heads="mean")(outputs(mask, attn1=a_s), outputs(mask, attn2=a_t), None)
    expected = reference_attention_kl(a_s.mean(1, keepdim=True).tolist(), a_t.mean(1, keepdim=True).tolist(),
                                      mask.tolist())
    assert got.item() == pytest.approx(expected, rel=1e-5)
    got.backward()
    assert a_s.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="no attn<i> tap"):
        AttentionKL()(outputs(mask, hidden1=a_s), outputs(mask, attn2=a_t), None)
