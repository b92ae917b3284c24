"""Divergences: closed forms, endpoint identities, masking of ignored positions, robustness."""

from __future__ import annotations

import math

import pytest
import torch

from kd.errors import ConfigError
from kd.losses.ce import HardLabelCE
from kd.losses.divergences import (
    ForwardKL,
    GeneralizedJSD,
    ReverseKL,
    SkewForwardKL,
    SkewReverseKL,
    TotalVariation,
)
from kd.losses.kd import SoftTargetKL
from kd.model_outputs import ModelOutputs

ALL = [ForwardKL, ReverseKL, GeneralizedJSD, TotalVariation]


def probs(z: torch.Tensor, t: float = 1.0) -> list[list[float]]:
    return torch.softmax(z / t, -1).reshape(-1, z.shape[-1]).tolist()


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def test_forward_kl_equals_hinton_kd_on_class_logits() -> None:
    z_s, z_t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    fkl = ForwardKL(temperature=3.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert fkl.item() == pytest.approx(SoftTargetKL(3.0)(ModelOutputs(z_s), ModelOutputs(z_t), y).item(), rel=1e-5)


def test_reverse_kl_and_tv_match_scalar_formulas() -> None:
    z_s, z_t, y = torch.randn(4, 6), torch.randn(4, 6) * 2, torch.zeros(4, dtype=torch.long)
    p_s, p_t = probs(z_s, 2.0), probs(z_t, 2.0)
    rkl = ReverseKL(temperature=2.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert rkl.item() == pytest.approx(4.0 * sum(kl(s, t) for s, t in zip(p_s, p_t, strict=True)) / 4, rel=1e-5)
    tv = TotalVariation(temperature=2.0)(ModelOutputs(z_s), ModelOutputs(z_t), y)
    expected = sum(0.5 * sum(abs(a - b) for a, b in zip(s, t, strict=True)) for s, t in zip(p_s, p_t, strict=True)) / 4
    assert tv.item() == pytest.approx(expected, rel=1e-5) and 0 <= tv.item() <= 1


def test_jsd_endpoints_are_the_two_kls_and_the_middle_is_jsd() -> None:
    z_s, z_t, y = torch.randn(5, 4), torch.randn(5, 4), torch.zeros(5, dtype=torch.long)
    s, t = ModelOutputs(z_s), ModelOutputs(z_t)
    assert GeneralizedJSD(jsd_beta=0.0)(s, t, y).item() == pytest.approx(ForwardKL()(s, t, y).item(), rel=1e-6)
    assert GeneralizedJSD(jsd_beta=1.0)(s, t, y).item() == pytest.approx(ReverseKL()(s, t, y).item(), rel=1e-6)
    p_s, p_t = probs(z_s), probs(z_t)
    jsd = 0.0
    for a, b in zip(p_s, p_t, strict=True):
        m = [(x + w) / 2 for x, w in zip(a, b, strict=True)]
        jsd += 0.5 * kl(b, m) + 0.5 * kl(a, m)
    assert GeneralizedJSD(jsd_beta=0.5)(s, t, y).item() == pytest.approx(jsd / 5, rel=1e-5)
    assert GeneralizedJSD(jsd_beta=0.5)(s, t, y).item() <= math.log(2)
    # Interior values approach the endpoint KLs at the rate jsd_beta (resp. 1 - jsd_beta).
    small = GeneralizedJSD(jsd_beta=1e-4)(s, t, y).item() / 1e-4
    assert small == pytest.approx(ForwardKL()(s, t, y).item(), rel=1e-2)


def test_ignored_positions_do_not_count() -> None:
    z_s, z_t = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    labels = torch.tensor([[1, 2, -100, -100, 3], [4, -100, 0, 1, -100]])
    valid = labels != -100
    for cls in ALL:
        term = cls()
        got = term(ModelOutputs(z_s), ModelOutputs(z_t), labels)
        dense = torch.stack([term(ModelOutputs(z_s[valid][i:i + 1]), ModelOutputs(z_t[valid][i:i + 1]), None)
                             for i in range(int(valid.sum()))]).mean()
        assert got.item() == pytest.approx(dense.item(), rel=1e-5), cls.__name__
        noisy = z_s.clone()
        noisy[~valid] = 1e3
        assert term(ModelOutputs(noisy), ModelOutputs(z_t), labels).item() == pytest.approx(got.item(), rel=1e-5)
    ce = HardLabelCE()(ModelOutputs(z_s), None, labels)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(z_s[valid], labels[valid]).item(), rel=1e-5)


@pytest.mark.parametrize("cls", ALL)
def test_zero_on_identical_gradients_to_student_only_and_finite(cls) -> None:
    z = torch.randn(3, 6)
    assert cls()(ModelOutputs(z), ModelOutputs(z.clone()), None).item() == pytest.approx(0, abs=1e-6)
    z_s, z_t = torch.randn(3, 6, requires_grad=True), torch.randn(3, 6, requires_grad=True)
    cls(temperature=2.0)(ModelOutputs(z_s), ModelOutputs(z_t), None).backward()
    assert z_s.grad.abs().sum() > 0 and z_t.grad is None
    extreme = torch.tensor([[1e4, -1e4, 0.0]])
    assert torch.isfinite(cls()(ModelOutputs(extreme), ModelOutputs(-extreme), None))
    assert torch.isfinite(cls()(ModelOutputs(torch.randn(3, 6).bfloat16()), ModelOutputs(z_t.bfloat16()), None))


MASKABLE = [ForwardKL(), ReverseKL(), GeneralizedJSD(), SkewForwardKL(), SkewReverseKL(), SoftTargetKL(1.0)]


@pytest.mark.parametrize("term", MASKABLE, ids=lambda t: type(t).__name__)
def test_masked_vocabulary_entries_give_finite_losses_and_gradients(term) -> None:
    """A -inf logit (a padded or masked vocabulary entry) contributes 0: 0 * log 0 = 0, not NaN."""
    z_s, z_t, y = torch.randn(3, 4, 6, requires_grad=True), torch.randn(3, 4, 6), torch.zeros(3, 4, dtype=torch.long)
    pad = torch.full((3, 4, 2), float("-inf"))
    padded = term(ModelOutputs(torch.cat([z_s, pad], -1)), ModelOutputs(torch.cat([z_t, pad], -1)), y)
    plain = term(ModelOutputs(z_s), ModelOutputs(z_t), y)
    assert torch.isfinite(padded) and padded.item() == pytest.approx(plain.item(), rel=1e-6)
    padded.backward()
    assert torch.isfinite(z_s.grad).all() and z_s.grad.abs().sum() > 0


def test_teacher_masked_entries_leave_the_forward_kl_finite() -> None:
    z_s, z_t, y = torch.randn(4, 6), torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    z_t[:, 4:] = float("-inf")  # the teacher gives these classes no mass; the student does
    for term in (ForwardKL(), SkewForwardKL(), SkewReverseKL(), GeneralizedJSD(), SoftTargetKL(1.0)):
        assert torch.isfinite(term(ModelOutputs(z_s), ModelOutputs(z_t), y)), type(term).__name__


def test_skew_kls_match_their_formulas_and_endpoints() -> None:
    z_s, z_t, y = torch.randn(5, 4), torch.randn(5, 4) * 3, torch.zeros(5, dtype=torch.long)
    s, t = ModelOutputs(z_s), ModelOutputs(z_t)
    assert SkewForwardKL(skew=0.0)(s, t, y).item() == pytest.approx(ForwardKL()(s, t, y).item(), rel=1e-6)
    assert SkewReverseKL(skew=0.0)(s, t, y).item() == pytest.approx(ReverseKL()(s, t, y).item(), rel=1e-6)
    p_s, p_t, lam = probs(z_s), probs(z_t), 0.1
    forward = sum(kl(b, [lam * x + (1 - lam) * w for x, w in zip(b, a, strict=True)]) for a, b in zip(p_s, p_t, strict=True))
    reverse = sum(kl(a, [lam * w + (1 - lam) * x for x, w in zip(b, a, strict=True)]) for a, b in zip(p_s, p_t, strict=True))
    assert SkewForwardKL(skew=lam)(s, t, y).item() == pytest.approx(forward / 5, rel=1e-5)
    assert SkewReverseKL(skew=lam)(s, t, y).item() == pytest.approx(reverse / 5, rel=1e-5)


def test_skew_bounds_the_divergence_where_the_student_misses_the_teacher() -> None:
    """The mixture holds at least skew * p_t, so the skew forward KL stays below -log(skew)."""
    z_t = torch.tensor([[30.0, 0.0, 0.0]])
    z_s = torch.tensor([[-30.0, 0.0, 0.0]])  # no mass where the teacher has all of it
    y = torch.zeros(1, dtype=torch.long)
    assert ForwardKL()(ModelOutputs(z_s), ModelOutputs(z_t), y).item() > 20
    for skew in (0.1, 0.5):
        value = SkewForwardKL(skew=skew)(ModelOutputs(z_s), ModelOutputs(z_t), y).item()
        assert 0 < value <= -math.log(skew) + 1e-6


def _top_k_reference(z_s: torch.Tensor, z_t: torch.Tensor, k: int, t: float) -> torch.Tensor:
    """Written out from the full-vocabulary teacher: ``p_t = softmax(z_t / T)``, its top k kept, the mass
    outside them given the shape of the student's tail; KL(p_t || p_s) per position."""
    p_full = (z_t / t).softmax(-1)
    p_top, index = p_full.topk(k, -1)
    r = 1 - p_top.sum(-1, keepdim=True)
    log_ps = (z_s / t).log_softmax(-1)
    p_s = log_ps.exp().detach()
    in_top = torch.zeros_like(p_s, dtype=torch.bool).scatter(-1, index, True)
    tail_s = (p_s * ~in_top).sum(-1, keepdim=True)
    p_t = torch.where(in_top, 0.0, r * p_s / tail_s).scatter(-1, index, p_top)
    return (p_t * (p_t.log() - log_ps)).sum(-1)


def _bucket_kl(z_s: torch.Tensor, z_t: torch.Tensor, k: int, t: float) -> torch.Tensor:
    """KL over the teacher's top k and one "rest" bucket, both distributions at temperature ``t``."""
    p_t, p_s = (z_t / t).softmax(-1), (z_s / t).softmax(-1)
    p_top, index = p_t.topk(k, -1)
    q_top = p_s.gather(-1, index)
    p_rest, q_rest = 1 - p_top.sum(-1), 1 - q_top.sum(-1)
    return (p_top * (p_top / q_top).log()).sum(-1) + p_rest * (p_rest / q_rest).log()


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_forward_kl_on_a_top_k_teacher_matches_the_full_teacher_with_gradients(temperature: float) -> None:
    """The O(k) path (cached language-model teachers), its top k built at the loss's temperature, against
    the formula written out from the full-vocabulary teacher; its value is the (k + 1)-bucket KL."""
    from kd.model_outputs import TopK
    from kd.teacher.top_k import top_k_log_probs

    torch.manual_seed(0)
    z_t, z_s = torch.randn(2, 5, 50) * 3, torch.randn(2, 5, 50, requires_grad=True)
    labels = torch.tensor([[1, 2, -100, 3, 4], [5, -100, -100, 6, 7]])
    top_k = TopK(*top_k_log_probs(z_t, 7, temperature), 50, temperature)
    term = ForwardKL(temperature=temperature, t2_scale=False)
    sparse = term(ModelOutputs(z_s), ModelOutputs(top_k=top_k), labels)
    (sparse_grad,) = torch.autograd.grad(sparse, z_s)
    valid = (labels != -100).float()
    reference = (_top_k_reference(z_s, z_t, 7, temperature) * valid).sum() / valid.sum()
    (reference_grad,) = torch.autograd.grad(reference, z_s)
    buckets = (_bucket_kl(z_s.detach(), z_t, 7, temperature) * valid).sum() / valid.sum()
    assert sparse.item() == pytest.approx(reference.item(), rel=1e-5) and reference.item() > 0.05
    assert sparse.item() == pytest.approx(buckets.item(), rel=1e-5)
    assert torch.allclose(sparse_grad, reference_grad, atol=1e-6)
    dense = ModelOutputs(top_k=top_k).logits  # pseudo-logits for terms that read logits: softmax(z / T) is the cache
    assert dense.shape == (2, 5, 50)
    kept = (dense / temperature).softmax(-1).gather(-1, top_k.index.long())
    assert torch.allclose(kept, (z_t / temperature).softmax(-1).gather(-1, top_k.index.long()), atol=1e-6)


def test_a_top_k_cache_at_t2_keeps_the_tempered_teachers_top_k_and_tail_mass() -> None:
    """Built at T=2, the top k and the tail mass are those of softmax(z / 2), not the T=1 top k re-tempered
    with an even tail (which over-states the tail and halves the top-1 probability of a real teacher)."""
    from kd.teacher.top_k import top_k_log_probs

    torch.manual_seed(3)
    z_t = torch.randn(4, 6, 300) * 4
    values, index, rest = top_k_log_probs(z_t, 16, 2.0)
    tempered = (z_t / 2).softmax(-1)
    assert torch.allclose(values.exp(), tempered.gather(-1, index), atol=1e-6)
    assert torch.allclose(rest.exp(), 1 - tempered.gather(-1, index).sum(-1), atol=1e-5)
    assert torch.equal(index, z_t.topk(16, -1).indices)  # the same tokens at every temperature


def test_a_term_at_another_temperature_than_the_cached_top_k_is_refused() -> None:
    from kd.model_outputs import TopK
    from kd.teacher.top_k import top_k_log_probs

    z_t, z_s = torch.randn(2, 3, 20), torch.randn(2, 3, 20)
    top_k = TopK(*top_k_log_probs(z_t, 4, 1.0), 20, 1.0)
    with pytest.raises(ConfigError, match=r"computed at temperature 1, but this term uses loss.temperature=2"):
        ForwardKL(temperature=2.0)(ModelOutputs(z_s), ModelOutputs(top_k=top_k), None)
    with pytest.raises(ConfigError, match=r"loss.temperature=2"):
        ReverseKL(temperature=2.0)(ModelOutputs(z_s), ModelOutputs(top_k=top_k), None)


def test_a_top_k_teacher_missing_one_entry_gives_the_full_divergences() -> None:
    """With k = V - 1 the tail is one entry, so every divergence equals the full-vocabulary one."""
    from kd.model_outputs import TopK
    from kd.teacher.top_k import top_k_log_probs

    torch.manual_seed(1)
    z_t, z_s = torch.randn(3, 4, 12) * 2, torch.randn(3, 4, 12)
    top_k = TopK(*top_k_log_probs(z_t, 11, 2.0), 12, 2.0)
    for term in (ForwardKL(2.0), ReverseKL(2.0), GeneralizedJSD(0.5, 2.0), TotalVariation(2.0)):
        full = term(ModelOutputs(z_s), ModelOutputs(z_t), None)
        assert term(ModelOutputs(z_s), ModelOutputs(top_k=top_k), None).item() == pytest.approx(full.item(), rel=1e-4)
