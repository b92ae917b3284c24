"""FSP, NST, AB, VID, ICKD, FT and OFD against per-element restatements of their papers' equations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kd.errors import ConfigError
from kd.losses.ab import ActivationBoundary
from kd.losses.fsp import FlowOfSolution
from kd.losses.ft import FactorTransfer
from kd.losses.ickd import InterChannelCorrelation
from kd.losses.nst import NeuronSelectivity
from kd.losses.ofd import OverhaulFeature, negative_margin
from kd.losses.vid import VariationalInformation
from kd.model_outputs import ModelOutputs


def outputs(**features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=torch.zeros(next(iter(features.values())).shape[0], 3), features=features)


def gram(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """One sample's FSP matrix by loops: G[i][j] = mean over positions of bottom_i * top_j."""
    c1, c2, positions = bottom.shape[0], top.shape[0], bottom[0].numel()
    return torch.tensor([[(bottom[i] * top[j]).sum().item() / positions for j in range(c2)] for i in range(c1)])


def test_fsp_matches_loops_and_sums_consecutive_pairs() -> None:
    torch.manual_seed(0)
    s = [torch.randn(2, 3, 6, 6), torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3)]
    t = [torch.randn(2, 3, 6, 6), torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3)]
    fsp = FlowOfSolution(["a", "b", "c"], ["a", "b", "c"])
    got = fsp(outputs(a=s[0], b=s[1], c=s[2]), outputs(a=t[0], b=t[1], c=t[2]), None)
    pool = torch.nn.functional.adaptive_avg_pool2d
    expected = 0.0
    for i in range(2):
        for n in range(2):
            low_s, low_t = (pool(s[0][n], (3, 3)), pool(t[0][n], (3, 3))) if i == 0 else (s[1][n], t[1][n])
            diff = gram(low_s, s[i + 1][n]) - gram(low_t, t[i + 1][n])
            expected += (diff**2).sum().item() / (2 * diff.numel())  # mean over batch and matrix entries
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert all(isinstance(c, nn.Identity) for c in fsp.connectors)


def test_fsp_maps_other_widths_and_needs_two_taps() -> None:
    fsp = FlowOfSolution(["a", "b"], ["a", "b"])
    f_s = torch.randn(2, 3, 4, 4, requires_grad=True)
    value = fsp(outputs(a=f_s, b=torch.randn(2, 5, 4, 4)), outputs(a=torch.randn(2, 6, 4, 4), b=torch.randn(2, 5, 4, 4)), None)
    value.backward()
    assert isinstance(fsp.connectors[0], nn.Sequential) and isinstance(fsp.connectors[1], nn.Identity)
    assert f_s.grad.abs().sum() > 0 and fsp.connectors[0][0].weight.grad is not None
    with pytest.raises(ConfigError, match="at least 2"):
        FlowOfSolution(["a"], ["a"])


def mmd_by_loops(f_s: torch.Tensor, f_t: torch.Tensor) -> float:
    """Squared MMD with k(x, y) = (x . y)^2 over each sample's L2-normalised channel maps, batch mean."""
    total = 0.0
    for s, t in zip(f_s, f_t, strict=True):
        xs = [c.flatten() / c.flatten().norm() for c in s]
        xt = [c.flatten() / c.flatten().norm() for c in t]

        def k(a: list, b: list) -> float:
            return sum(float(x @ y) ** 2 for x in a for y in b) / (len(a) * len(b))

        total += k(xt, xt) + k(xs, xs) - 2 * k(xs, xt)
    return total / f_s.shape[0]


def test_nst_matches_loops_pools_and_ignores_channel_scale() -> None:
    torch.manual_seed(1)
    f_s, f_t = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    nst = NeuronSelectivity(["a"], ["b"])
    got = nst(outputs(a=f_s), outputs(b=f_t), None)
    pooled = torch.nn.functional.adaptive_avg_pool2d(f_s, (4, 4))
    assert got.item() == pytest.approx(mmd_by_loops(pooled, f_t), rel=1e-5)
    scaled = f_s * torch.tensor([1.0, 7.0, 0.1]).view(1, 3, 1, 1)  # each channel's map is normalised
    assert nst(outputs(a=scaled), outputs(b=f_t), None).item() == pytest.approx(got.item(), rel=1e-5)
    assert nst(outputs(a=f_t), outputs(b=f_t), None).item() == pytest.approx(0, abs=1e-6)


def test_ab_matches_the_alternative_l2_by_cases_and_weighs_deeper_pairs_more() -> None:
    torch.manual_seed(2)
    s1, t1, s2, t2 = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4), torch.randn(2, 3, 2, 2), torch.randn(2, 6, 2, 2)
    ab = ActivationBoundary(["a", "b"], ["a", "b"], margin=0.5)
    got = ab(outputs(a=s1, b=s2), outputs(a=t1, b=t2), None)
    expected = 0.0
    for weight, connector, s, t in ((0.5, ab.connectors[0], s1, t1), (1.0, ab.connectors[1], s2, t2)):
        source = connector(s)
        total = 0.0
        for x, y in zip(source.flatten().tolist(), t.flatten().tolist(), strict=True):
            if y <= 0 and x > -0.5:  # teacher off, student not far enough below the boundary
                total += (x + 0.5) ** 2
            elif y > 0 and x <= 0.5:  # teacher on, student not far enough above it
                total += (x - 0.5) ** 2
        expected += weight * total / 2
    assert got.item() == pytest.approx(expected, rel=1e-5)
    far = torch.where(t1 > 0, 1.0, -1.0) * 3  # beyond the margin on the teacher's side everywhere
    assert ab.__class__(["a"], ["a"], margin=0.5)(outputs(a=far), outputs(a=t1), None).item() >= 0


def test_vid_is_the_gaussian_negative_log_likelihood_with_learned_variance() -> None:
    torch.manual_seed(3)
    f_s, f_t = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    vid = VariationalInformation(["a"], ["b"], init_variance=5.0)
    got = vid(outputs(a=f_s), outputs(b=f_t), None)
    regressor = vid.regressors[0]
    assert regressor.variance().tolist() == pytest.approx([5.0] * 5, rel=1e-5)  # softplus(a) + eps starts at 5
    mean = regressor.mean(f_s)
    terms = [0.5 * ((mean[n, c, h, w] - f_t[n, c, h, w]).item() ** 2 / 5.0 + math.log(5.0))
             for n in range(2) for c in range(5) for h in range(4) for w in range(4)]
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    got.backward()
    assert regressor.log_scale.grad is not None and regressor.mean[0].weight.grad is not None


def test_ickd_matches_row_normalised_channel_correlations() -> None:
    torch.manual_seed(4)
    f_s, f_t = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    ickd = InterChannelCorrelation(["a"], ["b"])
    got = ickd(outputs(a=f_s), outputs(b=f_t), None)
    mapped = ickd.connectors[0](f_s)

    def rows(x: torch.Tensor) -> list[list[float]]:
        flat = x.flatten(1)
        flat = flat.detach()
        matrix = [[float(flat[i] @ flat[j]) for j in range(len(flat))] for i in range(len(flat))]
        return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in matrix]

    expected = 0.0
    for n in range(2):
        for row_s, row_t in zip(rows(mapped[n]), rows(f_t[n]), strict=True):
            expected += sum((a - b) ** 2 for a, b in zip(row_s, row_t, strict=True))
    assert got.item() == pytest.approx(expected / (2 * 5), rel=1e-5)


def test_ft_distance_of_normalised_factors_plus_reconstruction_reaching_only_the_paraphraser() -> None:
    torch.manual_seed(5)
    f_s = torch.randn(2, 3, 4, 4, requires_grad=True)
    f_t = torch.randn(2, 8, 4, 4)
    ft = FactorTransfer("a", "b", rate=0.5, reconstruction_weight=0.25)
    got = ft(outputs(a=f_s), outputs(b=f_t), None)
    factor_s, factor_t = ft.translator(f_s).flatten(1), ft.encoder(f_t).flatten(1)
    assert factor_t.shape[1] == 4 * 16  # rate 0.5 of 8 teacher channels
    distance = sum(
        (a / factor_s[n].norm() - b / factor_t[n].norm()).abs().sum().item()
        for n in range(2) for a, b in [(factor_s[n], factor_t[n])]
    ) / factor_s.numel()
    reconstruction = ((ft.decoder(ft.encoder(f_t)) - f_t) ** 2).mean().item()
    assert got.item() == pytest.approx(distance + 0.25 * reconstruction, rel=1e-5)
    ft.zero_grad()
    FactorTransfer.forward(ft, outputs(a=f_s), outputs(b=f_t), None).backward()
    assert ft.decoder[0][0].weight.grad.abs().sum() > 0 and f_s.grad.abs().sum() > 0
    ft_without = FactorTransfer("a", "b", reconstruction_weight=0.0)
    ft_without(outputs(a=f_s), outputs(b=f_t), None).backward()
    grad = ft_without.encoder[0][0].weight.grad
    assert grad is None or not grad.any()  # the distance never trains the paraphraser


@pytest.mark.parametrize(
    "cls", [NeuronSelectivity, ActivationBoundary, VariationalInformation, InterChannelCorrelation, OverhaulFeature]
)
def test_gradients_reach_the_student_never_the_teacher_and_bf16_is_finite(cls: type) -> None:
    f_s = torch.randn(2, 3, 4, 4, requires_grad=True)
    f_t = torch.randn(2, 4, 4, 4, requires_grad=True)
    term = cls(["a"], ["b"])
    term(outputs(a=f_s), outputs(b=f_t), None).backward()
    assert f_s.grad.abs().sum() > 0 and f_t.grad is None
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under trainer.precision=bf16-mixed
        value = term(outputs(a=f_s.detach().bfloat16()), outputs(b=f_t.detach().bfloat16()), None)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    with pytest.raises(ConfigError, match="pairs taps in order"):
        cls(["a", "b"], ["c"])


def test_ofd_margin_is_the_gaussian_expectation_below_zero() -> None:
    torch.manual_seed(6)
    target = torch.randn(64, 2, 5, 5) * torch.tensor([1.0, 2.0]).view(1, 2, 1, 1) + torch.tensor([0.5, 8.0]).view(1, 2, 1, 1)
    got = negative_margin(target).flatten().tolist()
    values = [target[:, c].flatten().double() for c in range(2)]
    mu, sigma = values[0].mean().item(), values[0].std().item()
    # E[x | x < 0] of N(mu, sigma) by numerical integration of the density below 0
    x = torch.linspace(mu - 12 * sigma, 0.0, 200001, dtype=torch.float64)
    density = torch.exp(-0.5 * ((x - mu) / sigma) ** 2)
    assert got[0] == pytest.approx((torch.trapezoid(x * density, x) / torch.trapezoid(density, x)).item(), rel=1e-4)
    assert got[1] == pytest.approx(-3 * values[1].std().item(), rel=1e-4)  # almost never negative: -3 sigma


def test_ofd_partial_l2_skips_students_below_negative_teacher_responses() -> None:
    torch.manual_seed(7)
    s1, t1 = torch.randn(3, 2, 4, 4), torch.randn(3, 4, 4, 4)
    ofd = OverhaulFeature(["a"], ["a"])
    got = ofd(outputs(a=s1), outputs(a=t1), None)
    source, margin = ofd.connectors[0](s1), negative_margin(t1)
    total = 0.0
    for n in range(3):
        for c in range(4):
            m = margin[0, c, 0, 0].item()
            for x, y in zip(source[n, c].flatten().tolist(), t1[n, c].flatten().tolist(), strict=True):
                goal = max(y, m)
                if x > goal or goal > 0:  # the student is above the target, or the teacher fires
                    total += (x - goal) ** 2
    assert got.item() == pytest.approx(total / 3, rel=1e-5)


def test_srd_sends_the_mapped_student_representation_through_the_frozen_teacher_classifier() -> None:
    from kd.losses.srd import SoftmaxRegression

    torch.manual_seed(8)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 4)).requires_grad_(False)
    srd = SoftmaxRegression("e", "e", feature_weight=0.5)
    srd.bind_teacher(teacher)
    h_s, h_t, z_t = torch.randn(3, 5, requires_grad=True), torch.randn(3, 6), torch.randn(3, 4)
    got = srd(ModelOutputs(torch.zeros(3, 4), {"e": h_s}), ModelOutputs(z_t, {"e": h_t}), None)
    r = srd.connector(h_s)
    w, b = teacher[3].weight, teacher[3].bias  # the last linear layer is the classifier
    feature = sum((r[n, d] - h_t[n, d]).item() ** 2 for n in range(3) for d in range(6)) / 18
    logits = [[sum(w[k, d].item() * r[n, d].item() for d in range(6)) + b[k].item() for k in range(4)] for n in range(3)]
    regression = sum((logits[n][k] - z_t[n, k].item()) ** 2 for n in range(3) for k in range(4)) / 12
    assert got.item() == pytest.approx(0.5 * feature + regression, rel=1e-5)
    got.backward()
    assert h_s.grad.abs().sum() > 0 and teacher[3].weight.grad is None
    assert not any(p is teacher[3].weight for p in srd.parameters())  # borrowed, not registered
    with pytest.raises(ConfigError, match="teacher_head='head'.*linear layers: \\['1', '3'\\]"):
        SoftmaxRegression(teacher_head="head").bind_teacher(teacher)
    with pytest.raises(ConfigError, match="bind_teacher"):
        SoftmaxRegression("e", "e")(ModelOutputs(torch.zeros(3, 4), {"e": h_s}), ModelOutputs(z_t, {"e": h_t}), None)
