"""RKD and PKT against loop-based restatements of the papers' formulas on small fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from kd.losses.embedding import pooled_embedding
from kd.losses.pkt import ProbabilisticKT
from kd.losses.rkd import RelationalKD
from kd.model_outputs import ModelOutputs


def outputs(**features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(2, 3), features=features)


def huber(a: list[float], b: list[float]) -> float:
    return sum(0.5 * (x - y) ** 2 if abs(x - y) < 1 else abs(x - y) - 0.5 for x, y in zip(a, b, strict=True)) / len(a)


def reference_rkd(e_s: list[list[float]], e_t: list[list[float]], w_d: float, w_a: float) -> float:
    n = len(e_s)

    def dist(e: list[list[float]]) -> list[float]:
        d = [[math.dist(e[i], e[j]) for j in range(n)] for i in range(n)]
        mean = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return [d[i][j] / mean for i in range(n) for j in range(n)]

    def angle(e: list[list[float]]) -> list[float]:
        out = []
        for i in range(n):  # anchor i, as in the reference implementation's e[None] - e[:, None]
            for j in range(n):
                for k in range(n):
                    u = [a - b for a, b in zip(e[j], e[i], strict=True)]
                    v = [a - b for a, b in zip(e[k], e[i], strict=True)]
                    nu, nv = math.hypot(*u), math.hypot(*v)
                    out.append(0.0 if nu == 0 or nv == 0 else sum(a * b for a, b in zip(u, v, strict=True)) / nu / nv)
        return out

    return w_d * huber(dist(e_s), dist(e_t)) + w_a * huber(angle(e_s), angle(e_t))


@pytest.mark.parametrize(("w_d", "w_a"), [(25.0, 50.0), (1.0, 0.0), (0.0, 1.0)])
def test_rkd_matches_reference(w_d: float, w_a: float) -> None:
    torch.manual_seed(5)
    f_s, f_t = torch.randn(5, 3, 2, 2), torch.randn(5, 6, 2, 2) * 4
    got = RelationalKD("a", "b", w_d, w_a)(outputs(a=f_s), outputs(b=f_t), None)
    expected = reference_rkd(pooled_embedding(f_s).tolist(), pooled_embedding(f_t).tolist(), w_d, w_a)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_rkd_is_zero_for_a_scaled_copy_and_reaches_only_the_student() -> None:
    e = torch.randn(6, 4)
    rkd = RelationalKD("a", "b")
    assert rkd(outputs(a=e), outputs(b=5 * e), None).item() == pytest.approx(0, abs=1e-6)  # scale-invariant
    e_s, e_t = torch.randn(6, 4, requires_grad=True), torch.randn(6, 8, requires_grad=True)
    rkd(outputs(a=e_s), outputs(b=e_t), None).backward()
    assert e_s.grad.abs().sum() > 0 and e_t.grad is None
    assert torch.isfinite(rkd(outputs(a=e_s.detach() * 1e4), outputs(b=e_t.detach().bfloat16()), None))


def reference_pkt(e_s: list[list[float]], e_t: list[list[float]], eps: float = 1e-7) -> float:
    def law(e: list[list[float]]) -> list[list[float]]:
        unit = [[x / math.hypot(*row) for x in row] for row in e]
        k = [[(sum(a * b for a, b in zip(u, v, strict=True)) + 1) / 2 for v in unit] for u in unit]
        return [[x / sum(row) for x in row] for row in k]

    p, q = law(e_t), law(e_s)
    n = len(p)
    return sum(p[i][j] * math.log((p[i][j] + eps) / (q[i][j] + eps)) for i in range(n) for j in range(n)) / n**2


def test_pkt_matches_reference_and_properties() -> None:
    torch.manual_seed(6)
    e_s, e_t = torch.randn(5, 3), torch.randn(5, 7)
    pkt = ProbabilisticKT("a", "b")
    assert pkt(outputs(a=e_s), outputs(b=e_t), None).item() == pytest.approx(
        reference_pkt(e_s.tolist(), e_t.tolist()), rel=1e-4)
    assert pkt(outputs(a=e_s), outputs(b=2 * e_s), None).item() == pytest.approx(0, abs=1e-7)
    s = e_s.clone().requires_grad_()
    t = e_t.clone().requires_grad_()
    pkt(outputs(a=s), outputs(b=t), None).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    assert torch.isfinite(pkt(outputs(a=e_s * 1e4), outputs(b=e_t.bfloat16()), None))


def test_rkd_coincident_student_points_get_bounded_gradients() -> None:
    # Two samples the student maps to the same point while the teacher keeps them apart: the angle
    # at that pair is undefined; it must not send a huge gradient (seen as NaN training before).
    e_s = torch.randn(6, 4)
    e_s[3] = e_s[1]
    e_s.requires_grad_()
    e_t = torch.randn(6, 8)
    RelationalKD("a", "b", 25.0, 50.0)(outputs(a=e_s), outputs(b=e_t), None).backward()
    assert torch.isfinite(e_s.grad).all() and e_s.grad.abs().max() < 1e3
