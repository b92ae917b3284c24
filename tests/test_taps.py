"""Feature taps: declared aliases, shapes, hook removal, errors."""

from __future__ import annotations

import pytest
import timm
import torch
from hydra.utils import instantiate
from torch import nn

from kd.errors import ConfigError
from kd.taps import FeatureTaps
from kd.utils.precision import apply_auto_precision
from tests.conftest import CONF_DIR, MODALITY_BASES, slow_if_pretrained


def tiny_resnet() -> nn.Module:
    return timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=[4, 8, 16, 32], in_chans=1, num_classes=10)


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_taps_return_declared_aliases_with_shapes() -> None:
    model = tiny_resnet()
    taps = FeatureTaps(model, {"stage1": "layer1", "stage3": "layer3", "stage4": "layer4"})
    out = taps(torch.randn(2, 1, 28, 28))
    assert out.logits.shape == (2, 10)
    assert set(out.features) == {"stage1", "stage3", "stage4"}
    # timm ResNet: stem /4, then stages /1, /2, /2, /2 -> 7, 4, 2, 1 pixels at 28x28.
    assert out.features["stage1"].shape == (2, 4, 7, 7)
    assert out.features["stage3"].shape == (2, 16, 2, 2)
    assert out.features["stage4"].shape == (2, 32, 1, 1)


def test_taps_record_one_forward_pass_only() -> None:
    model = tiny_resnet()
    taps = FeatureTaps(model, {"stage4": "layer4"})
    first = taps(torch.randn(3, 1, 28, 28))
    second = taps(torch.randn(5, 1, 28, 28))
    assert first.features["stage4"].shape[0] == 3 and second.features["stage4"].shape[0] == 5


def test_taps_match_the_model_own_features() -> None:
    model = tiny_resnet().eval()
    x = torch.randn(2, 1, 28, 28)
    with FeatureTaps(model, {"stage4": "layer4"}) as taps:
        out = taps(x)
    torch.testing.assert_close(out.logits, model(x))
    (stage4,) = model.forward_intermediates(x, indices=[4], intermediates_only=True)
    torch.testing.assert_close(out.features["stage4"], stage4)


def test_hooks_are_removed_afterwards() -> None:
    model = tiny_resnet()
    before = hook_count(model)
    with FeatureTaps(model, {"a": "layer1", "b": "layer2"}):
        assert hook_count(model) == before + 2
    assert hook_count(model) == before
    taps = FeatureTaps(model, {"a": "layer1"})
    taps.remove()
    assert hook_count(model) == before


def test_unknown_module_lists_available_names() -> None:
    with pytest.raises(ConfigError) as err:
        FeatureTaps(tiny_resnet(), {"stage4": "layer5"})
    message = str(err.value)
    assert "layers.stage4" in message and "'layer5'" in message
    assert "Did you mean" in message and "layer4" in message
    assert "layer1.0.conv1" in message and "fc" in message  # the full list of module names


class TupleBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x


class KeywordModel(nn.Module):
    """Takes keyword inputs and returns an object with ``.logits`` (like Hugging Face models)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = TupleBlock()
        self.head = nn.Linear(3, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        hidden, _ = self.block(input_ids * attention_mask)
        return type("Out", (), {"logits": self.head(hidden)})()


def test_taps_unwrap_tuples_and_accept_keyword_inputs() -> None:
    taps = FeatureTaps(KeywordModel(), {"hidden": "block"})
    x = torch.randn(4, 3)
    out = taps({"input_ids": x, "attention_mask": torch.ones(4, 3)})
    assert out.logits.shape == (4, 2)
    torch.testing.assert_close(out.features["hidden"], x * 2)


MODEL_OPTIONS = [(g, p.stem) for g in ("teacher", "student") for p in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(
    ("group", "option"),
    [pytest.param(g, o, marks=slow_if_pretrained(g, o)) for g, o in MODEL_OPTIONS],
    ids=[f"{g}={o}" for g, o in MODEL_OPTIONS],
)
def test_every_model_config_declares_valid_taps(make_cfg, group: str, option: str) -> None:
    modality = make_cfg(f"{group}={option}", base=[])[group].modality
    cfg = make_cfg(f"{group}={option}", base=MODALITY_BASES[modality])
    apply_auto_precision(cfg)  # as a job does first: a net.dtype `auto` decided
    model = instantiate(cfg[group].net).eval()
    if modality == "image":
        inputs = torch.randn(2, cfg.data.in_chans, 28, 28)
    else:
        inputs = instantiate(cfg.data.module).example_inputs(2)
    with FeatureTaps(model, cfg[group].layers) as taps:
        out = taps(inputs)
    assert out.logits.shape[0] == 2 and out.logits.shape[-1] == cfg.data.num_classes
    assert set(out.features) == set(cfg[group].layers)


def test_input_tap_reads_the_pre_relu_sum_of_the_last_block() -> None:
    from kd.models.cifar.resnet import cifar_resnet

    model = cifar_resnet(8, [4, 4, 8, 8], in_chans=1, num_classes=10).eval()
    taps = FeatureTaps(model, {"pre": "layer3.0.relu[in]", "post": "layer3"})
    x = torch.randn(2, 1, 12, 12)
    out = taps(x)
    block = model.layer3[0]
    inner = model.layer2(model.layer1(model.relu(model.bn1(model.conv1(x)))))
    expected = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(inner))))) + block.downsample(inner)
    torch.testing.assert_close(out.features["pre"], expected)  # the shared ReLU's last call: the block output's input
    assert (out.features["pre"] < 0).any() and torch.equal(out.features["post"], out.features["pre"].clamp(min=0))


def test_input_tap_of_an_in_place_relu_keeps_the_negative_values() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    x = torch.randn(5, 3, requires_grad=True)
    out = FeatureTaps(model, {"pre": "1[in]"})(x)
    torch.testing.assert_close(out.features["pre"], model[0](x))
    assert (out.features["pre"] < 0).any()
    out.features["pre"].sum().backward()  # the copy stays in the graph
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match=r"\[index\] or \[in\]"):
        FeatureTaps(model, {"pre": "1[out]"})
