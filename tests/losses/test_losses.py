"""Loss terms: values against independent restatements, properties, gradients, validation."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from kd.errors import ConfigError
from kd.losses import connectors
from kd.losses.ce import HardLabelCE
from kd.losses.feature import FeatureHint
from kd.losses.kd import SoftTargetKL
from kd.losses.weighted_sum import WeightedSum
from kd.model_outputs import ModelOutputs
from kd.training import build_loss


def outputs(logits: torch.Tensor, **features: torch.Tensor) -> ModelOutputs:
    return ModelOutputs(logits=logits, features=features)


def manual_kd(z_s: torch.Tensor, z_t: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 * mean_b sum_c p_t (log p_t - log p_s), written out with plain tensor ops."""
    p_t = torch.exp(z_t / t) / torch.exp(z_t / t).sum(-1, keepdim=True)
    p_s = torch.exp(z_s / t) / torch.exp(z_s / t).sum(-1, keepdim=True)
    return t * t * (p_t * (p_t.log() - p_s.log())).sum(-1).mean()


def test_kd_is_zero_on_identical_logits() -> None:
    z = torch.randn(8, 10) * 3
    assert SoftTargetKL(4.0)(outputs(z), outputs(z.clone()), torch.zeros(8)).item() == pytest.approx(0, abs=1e-6)


def test_kd_golden_two_class_value() -> None:
    # Two classes, T=2: p_t = softmax([2, 0]/2) = [e/(e+1), 1/(e+1)], p_s = [1/2, 1/2].
    p = math.e / (math.e + 1)
    kl = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    value = SoftTargetKL(2.0)(outputs(torch.tensor([[0.0, 0.0]])), outputs(torch.tensor([[2.0, 0.0]])), None)
    assert value.item() == pytest.approx(4 * kl, rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 8.0])
def test_kd_matches_manual_formula(temperature: float) -> None:
    z_s, z_t = torch.randn(16, 10), torch.randn(16, 10) * 2
    got = SoftTargetKL(temperature)(outputs(z_s), outputs(z_t), None)
    assert got.item() == pytest.approx(manual_kd(z_s, z_t, temperature).item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 8.0])
def test_kd_gradient_scales_with_t_squared(temperature: float) -> None:
    # d/dz_s [T^2 KL(p_t || p_s)] = T * (p_s - p_t) / B: the T^2 factor keeps it O(1/T) * T^2 / T.
    z_s = torch.randn(4, 6, requires_grad=True)
    z_t = torch.randn(4, 6)
    SoftTargetKL(temperature)(outputs(z_s), outputs(z_t), None).backward()
    expected = temperature * (F.softmax(z_s / temperature, -1) - F.softmax(z_t / temperature, -1)) / 4
    torch.testing.assert_close(z_s.grad, expected.detach(), rtol=1e-4, atol=1e-6)


def test_kd_t_squared_factor_against_unscaled_kl() -> None:
    z_s, z_t = torch.randn(8, 5), torch.randn(8, 5)
    for t in (1.0, 3.0, 10.0):
        plain = F.kl_div(F.log_softmax(z_s / t, -1), F.softmax(z_t / t, -1), reduction="batchmean")
        got = SoftTargetKL(t)(outputs(z_s), outputs(z_t), None)
        assert got.item() == pytest.approx(t * t * plain.item(), rel=1e-5)


def test_kd_finite_for_extreme_logits() -> None:
    z_s = torch.tensor([[1e4, -1e4, 0.0]])
    z_t = torch.tensor([[-1e4, 1e4, 0.0]])
    assert torch.isfinite(SoftTargetKL(1.0)(outputs(z_s), outputs(z_t), None))


def test_ce_matches_torch_cross_entropy() -> None:
    z, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert HardLabelCE()(outputs(z), None, y).item() == pytest.approx(F.cross_entropy(z, y).item())


def test_weighted_sum_combines_named_terms() -> None:
    z_s, z_t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    loss = WeightedSum({"ce": {"weight": 0.25, "fn": HardLabelCE()}, "kd": {"weight": 0.75, "fn": SoftTargetKL(2.0)}})
    total, parts = loss(outputs(z_s), outputs(z_t), y)
    assert set(parts) == {"ce", "kd"}
    expected = 0.25 * F.cross_entropy(z_s, y) + 0.75 * manual_kd(z_s, z_t, 2.0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.needs_teacher


def test_weighted_sum_skips_zero_weight_terms() -> None:
    loss = WeightedSum({"ce": {"weight": 1.0, "fn": HardLabelCE()}, "kd": {"weight": 0.0, "fn": SoftTargetKL()}})
    assert loss.active == ["ce"] and not loss.needs_teacher
    _, parts = loss(outputs(torch.randn(2, 3)), None, torch.tensor([0, 1]))
    assert list(parts) == ["ce"]


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"ce": 0.0}, "every weight"), ({}, "loss.terms is empty")],
)
def test_weighted_sum_rejects_bad_weights(weights: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WeightedSum({name: {"weight": w, "fn": HardLabelCE()} for name, w in weights.items()})


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_kd_config_weights_follow_alpha(make_cfg, alpha: float) -> None:
    loss = build_loss(make_cfg("loss=kd", f"loss.alpha={alpha}", "loss.temperature=3").loss)
    assert loss.weights == {"ce": pytest.approx(1 - alpha), "kd": pytest.approx(alpha)}
    assert loss.fns["kd"].temperature == 3.0


def test_feature_hint_builds_connector_from_shapes() -> None:
    hint = FeatureHint("s", "t")
    s, t = torch.randn(4, 8, 5, 5), torch.randn(4, 32, 5, 5)
    hint(outputs(torch.zeros(4, 2), s=s), outputs(torch.zeros(4, 2), t=t), None)
    assert hint.connector[0].weight.shape == (32, 8, 1, 1)
    vec = FeatureHint("s", "t")
    vec(outputs(torch.zeros(4, 2), s=torch.randn(4, 8)), outputs(torch.zeros(4, 2), t=torch.randn(4, 24)), None)
    assert vec.connector.weight.shape == (24, 8)


@pytest.mark.parametrize(("student_hw", "teacher_hw"), [(8, 4), (2, 4), (4, 4)])
def test_feature_hint_bridges_spatial_sizes(student_hw: int, teacher_hw: int) -> None:
    hint = FeatureHint("s", "t")
    s = torch.randn(2, 3, student_hw, student_hw)
    t = torch.randn(2, 6, teacher_hw, teacher_hw)
    value = hint(outputs(torch.zeros(2, 2), s=s), outputs(torch.zeros(2, 2), t=t), None)
    assert value.dim() == 0 and torch.isfinite(value)


def test_feature_hint_value_is_mse_after_connector() -> None:
    hint = FeatureHint("s", "t")
    s, t = torch.randn(3, 4), torch.randn(3, 5)
    value = hint(outputs(torch.zeros(3, 2), s=s), outputs(torch.zeros(3, 2), t=t), None)
    expected = ((s @ hint.connector.weight.T + hint.connector.bias - t) ** 2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_hint_rejects_rank_mismatch() -> None:
    with pytest.raises(ConfigError, match="no connector maps between different ranks"):
        FeatureHint("s", "t")(outputs(torch.zeros(2, 2), s=torch.randn(2, 4, 3, 3)),
                              outputs(torch.zeros(2, 2), t=torch.randn(2, 4)), None)


def test_feature_hint_unknown_alias_lists_declared_ones() -> None:
    with pytest.raises(ConfigError, match=r"no feature tap named 'stage9'.*\['s'\]"):
        FeatureHint("stage9", "t")(outputs(torch.zeros(2, 2), s=torch.randn(2, 4)),
                                   outputs(torch.zeros(2, 2), t=torch.randn(2, 4)), None)


@pytest.mark.parametrize("correction", [0, 1])
def test_kd_logit_standardisation_matches_reference_and_ignores_scale(correction: int) -> None:
    z_s, z_t = torch.randn(6, 10), torch.randn(6, 10) * 5 + 3

    def zscore(z: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in z.tolist():  # population std (paper) divides by C, unbiased (authors' code) by C - 1
            mean = sum(row) / len(row)
            std = math.sqrt(sum((v - mean) ** 2 for v in row) / (len(row) - correction))
            rows.append([(v - mean) / (std + 1e-7) for v in row])
        return torch.tensor(rows)

    got = SoftTargetKL(2.0, standardize=True, std_correction=correction)(outputs(z_s), outputs(z_t), None)
    assert got.item() == pytest.approx(manual_kd(zscore(z_s), zscore(z_t), 2.0).item(), rel=1e-4)
    other = SoftTargetKL(2.0, standardize=True, std_correction=1 - correction)(outputs(z_s), outputs(z_t), None)
    assert abs(other.item() - got.item()) > 1e-3 * got.item()  # the two conventions are told apart
    # Scaling and shifting the teacher's logits changes nothing once they are standardised.
    moved = SoftTargetKL(2.0, standardize=True, std_correction=correction)(outputs(z_s), outputs(10 * z_t - 4), None)
    assert moved.item() == pytest.approx(got.item(), rel=1e-4)
    same = SoftTargetKL(2.0, standardize=True, std_correction=correction)(outputs(z_s), outputs(3 * z_s), None)
    assert same.item() == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize(
    ("connector", "shape_s", "shape_t", "kernel"),
    [(functools.partial(connectors.conv_bn, kernel_size=3), (2, 4, 5, 5), (2, 8, 5, 5), (8, 4, 3, 3)),
     (connectors.linear, (2, 4, 5, 5), (2, 8, 5, 5), (8, 4)),
     (connectors.linear, (2, 7, 4), (2, 7, 6), (6, 4))],
)
def test_feature_hint_connector_choices(connector, shape_s, shape_t, kernel) -> None:
    hint = FeatureHint("s", "t", connector=connector)
    s = torch.randn(*shape_s, requires_grad=True)
    value = hint(outputs(torch.zeros(2, 2), s=s), outputs(torch.zeros(2, 2), t=torch.randn(*shape_t)), None)
    weights = [p for p in hint.connector.parameters() if p.dim() > 1]
    assert tuple(weights[0].shape) == kernel
    value.backward()
    assert s.grad.abs().sum() > 0 and weights[0].grad.abs().sum() > 0


def test_conv_connector_rejects_vectors() -> None:
    with pytest.raises(ConfigError, match="conv_bn needs"):
        connectors.conv_bn(torch.Size([2, 4]), torch.Size([2, 8]))
