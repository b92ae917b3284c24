"""Correlation congruence and CRD against scalar restatements of the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kd.errors import ConfigError
from kd.losses.cc import CorrelationCongruence, correlation_matrix
from kd.losses.crd import ContrastiveRepresentation, nce_loss
from kd.model_outputs import ModelOutputs


def outputs(index: torch.Tensor | None = None, **features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(1, 2), features=features, index=index)


def unit(v: list[float]) -> list[float]:
    norm = math.hypot(*v)
    return [x / norm for x in v]


def reference_cc(e_s: list, e_t: list, gamma: float, order: int) -> float:
    def corr(e: list) -> list:
        u = [unit(v) for v in e]
        dots = [[sum(a * b for a, b in zip(x, y, strict=True)) for y in u] for x in u]
        return [[sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * d**p for p in range(order + 1))
                 for d in row] for row in dots]

    c_s, c_t = corr(e_s), corr(e_t)
    n = len(e_s)
    return sum((c_s[i][j] - c_t[i][j]) ** 2 for i in range(n) for j in range(n)) / n**2


def test_cc_matches_reference_and_its_kernel_approximates_the_gaussian() -> None:
    torch.manual_seed(0)
    f_s, f_t = torch.randn(5, 3, 2, 2), torch.randn(5, 7)
    got = CorrelationCongruence("s", "t")(outputs(s=f_s), outputs(t=f_t), None)
    expected = reference_cc(f_s.mean(dim=(2, 3)).tolist(), f_t.tolist(), gamma=0.4, order=2)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    e = torch.randn(4, 6)
    unit_e = F.normalize(e, dim=1)
    exact = torch.exp(-0.4 * torch.cdist(unit_e, unit_e).pow(2))
    torch.testing.assert_close(correlation_matrix(e, "gaussian", 0.4, order=12), exact, atol=1e-5, rtol=0)
    torch.testing.assert_close(correlation_matrix(e, "bilinear", 0.4, 2), unit_e @ unit_e.T)


def test_cc_is_zero_for_scaled_copies_and_trains_only_the_student() -> None:
    e = torch.randn(6, 4, requires_grad=True)
    e_t = (3 * e).detach().requires_grad_()
    cc = CorrelationCongruence("s", "t")
    assert cc(outputs(s=e), outputs(t=e_t), None).item() == pytest.approx(0, abs=1e-10)
    cc(outputs(s=e), outputs(t=torch.randn(6, 4, requires_grad=True)), None).backward()
    assert e.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="kernel"):
        CorrelationCongruence(kernel="rbf")


def reference_nce(scores: list, n_data: int) -> float:
    k, pn, total = len(scores[0]) - 1, 1 / n_data, 0.0
    for row in scores:
        total += math.log(row[0] / (row[0] + k * pn + 1e-7))
        total += sum(math.log(k * pn / (x + k * pn + 1e-7)) for x in row[1:])
    return -total / len(scores)


def test_nce_loss_matches_reference() -> None:
    scores = torch.rand(3, 5) * 2
    assert nce_loss(scores, 100).item() == pytest.approx(reference_nce(scores.tolist(), 100), rel=1e-5)


def test_crd_scores_memory_bank_entries_and_moves_them_with_momentum() -> None:
    torch.manual_seed(0)
    crd = ContrastiveRepresentation("s", "t", feat_dim=3, nce_k=4, nce_t=0.5, nce_m=0.5)
    crd.bind_train_size(10)
    assert crd.memory_s.shape == (10, 3) and crd.memory_t.shape == (10, 3)
    f_s, f_t, index = torch.randn(2, 5, requires_grad=True), torch.randn(2, 6), torch.tensor([7, 2])
    with torch.no_grad():
        crd(outputs(s=f_s), outputs(t=f_t), None)  # dry run: builds the heads, touches no memory
    bank_s, bank_t = crd.memory_s.clone(), crd.memory_t.clone()
    torch.manual_seed(1)
    loss = crd(outputs(index, s=f_s), outputs(index, t=f_t), None)
    torch.manual_seed(1)
    negatives = torch.randint(10, (4,)).tolist()  # drawn once per batch, shared by its samples
    v_s = F.normalize(crd.embed_s(f_s), dim=1).detach()
    v_t = F.normalize(crd.embed_t(f_t), dim=1).detach()

    def scores(anchor: torch.Tensor, bank: torch.Tensor) -> list:
        raw = [[math.exp(sum(a * b for a, b in zip(bank[j].tolist(), anchor[i].tolist(), strict=True)) / 0.5)
                for j in [index[i].item(), *negatives]] for i in range(2)]
        z = sum(map(sum, raw)) / (2 * 5) * 10  # mean of the first batch's B x (K + 1) scores, times N
        return [[x / z for x in row] for row in raw]

    expected = reference_nce(scores(v_s, bank_t), 10) + reference_nce(scores(v_t, bank_s), 10)
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    torch.testing.assert_close(crd.memory_s[index], F.normalize(0.5 * bank_s[index] + 0.5 * v_s, dim=1))
    torch.testing.assert_close(crd.memory_t[index], F.normalize(0.5 * bank_t[index] + 0.5 * v_t, dim=1))
    untouched = [i for i in range(10) if i not in (7, 2)]
    assert torch.equal(crd.memory_s[untouched], bank_s[untouched])
    z = crd.z.clone()
    loss.backward()
    assert f_s.grad.abs().sum() > 0 and crd.embed_t.weight.grad.abs().sum() > 0
    crd(outputs(index, s=f_s), outputs(index, t=f_t), None)
    assert torch.equal(crd.z, z)  # the normalisers are fixed after the first batch


def test_crd_needs_indices_within_the_bank() -> None:
    crd = ContrastiveRepresentation("s", "t", feat_dim=3, nce_k=2)
    crd.bind_train_size(4)
    f_s, f_t = torch.randn(2, 5, requires_grad=True), torch.randn(2, 5)
    with pytest.raises(ConfigError, match=r"batch\['index'\]"):
        crd(outputs(s=f_s), outputs(t=f_t), None)
    with pytest.raises(ConfigError, match="holds 4 samples"):
        crd(outputs(torch.tensor([0, 9]), s=f_s), outputs(torch.tensor([0, 9]), t=f_t), None)
    with pytest.raises(ConfigError, match="nce_k"):
        ContrastiveRepresentation(nce_k=0)


def test_crd_and_srd_run_in_float64_as_trainer_precision_64_true_makes_them() -> None:
    """Their embeddings are pooled in float32 (kd.losses.embedding); the heads, connectors and banks that
    meet them are float64 once the precision plugin has converted the module."""
    from kd.losses.srd import SoftmaxRegression

    crd = ContrastiveRepresentation("s", "t", feat_dim=3, nce_k=2)
    crd.bind_train_size(4)
    f_s, f_t, index = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64), torch.tensor([0, 3])
    with torch.no_grad():
        crd(outputs(s=f_s), outputs(t=f_t), None)  # dry run: builds the heads
    crd.double()
    assert torch.isfinite(crd(outputs(index, s=f_s), outputs(index, t=f_t), None))
    srd = SoftmaxRegression("s", "t")
    srd.bind_teacher(torch.nn.Linear(6, 2).double())
    teacher = ModelOutputs(logits=torch.zeros(2, 2, dtype=torch.float64), features={"t": f_t})
    srd(ModelOutputs(logits=torch.zeros(2, 2), features={"s": f_s}), teacher, None)  # builds the connector
    srd.double()
    assert torch.isfinite(srd(ModelOutputs(logits=torch.zeros(2, 2), features={"s": f_s}), teacher, None))
