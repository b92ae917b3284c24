"""The small-input benchmark CNNs (kd.models.cifar): the papers' sizes, any input size, taps that resolve."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kd.models.cifar.resnet import cifar_resnet
from kd.models.cifar.shufflenet import small_shufflenet
from kd.models.cifar.vgg import small_vgg
from kd.models.cifar.wrn import wide_resnet
from kd.taps import FeatureTaps
from tests.conftest import CONF_DIR

# Parameter counts (millions, 100 classes, 3-channel input) in the CRD paper's CIFAR-100 tables
# (Tian et al., ICLR 2020), which RepDistiller and mdistiller reproduce.
PAPER_MILLIONS = {
    "resnet20": 0.28, "resnet32": 0.47, "resnet56": 0.86, "resnet110": 1.73, "resnet8x4": 1.23,
    "resnet32x4": 7.43, "wrn_16_2": 0.70, "wrn_40_1": 0.57, "wrn_40_2": 2.25, "vgg8": 3.96, "vgg13": 9.46,
}
CIFAR_MODELS = sorted(
    p.stem for p in (CONF_DIR / "student").glob("*.yaml") if "kd.models.cifar" in p.read_text()
)


def build(name: str, in_chans: int, num_classes: int) -> torch.nn.Module:
    cfg = OmegaConf.load(CONF_DIR / "student" / f"{name}.yaml")
    cfg.net.in_chans, cfg.net.num_classes = in_chans, num_classes
    return instantiate(cfg.net), dict(cfg.layers)


def test_every_benchmark_family_has_a_config() -> None:
    wanted = {"resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
              "resnet32x4", "wrn_16_2", "wrn_40_1", "wrn_40_2", "vgg8", "vgg13", "mobilenetv2", "shufflev1",
              "shufflev2"}
    assert wanted <= set(CIFAR_MODELS)


@pytest.mark.parametrize("name", sorted(PAPER_MILLIONS))
def test_parameter_count_matches_the_papers(name: str) -> None:
    net, _ = build(name, in_chans=3, num_classes=100)
    millions = sum(p.numel() for p in net.parameters()) / 1e6
    # the papers print two decimals, some rounded (resnet20: 0.278 -> 0.28), some cut (wrn_40_2: 2.255 -> 2.25)
    assert abs(millions - PAPER_MILLIONS[name]) < 0.01, f"{name}: {millions:.4f} M"


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_runs_on_28_and_32_px_and_every_tap_resolves(name: str) -> None:
    net, layers = build(name, in_chans=1, num_classes=10)
    net.eval()
    assert {"stage1", "stage2", "stage3", "embedding"} <= set(layers)
    with FeatureTaps(net, layers) as taps, torch.no_grad():
        for size in (28, 32):
            out = taps(torch.randn(2, 1, size, size))
            assert out.logits.shape == (2, 10)
    seen = out.features
    assert set(seen) == set(layers), f"{name}: taps that recorded nothing"
    # stages go deeper: no wider maps later on, and the embedding is a 4-d map that relation losses pool
    sides = [seen[f"stage{i}"].shape[-1] for i in (1, 2, 3)]
    assert sides == sorted(sides, reverse=True) and seen["embedding"].dim() == 4
    # preact<i> (AB, OFD) is the map the stage output is the ReLU of, or the output itself without a ReLU
    for alias in [a for a in layers if a.startswith("preact")]:
        stage, pre = seen[alias.replace("preact", "stage")], seen[alias]
        assert torch.equal(stage, pre.clamp(min=0)) or torch.equal(stage, pre), f"{name}: {alias}"


def test_first_stage_keeps_the_input_resolution() -> None:
    """No ImageNet stem: a 28 px image is still 28 px in ResNet and WRN's first stage (timm's: 7 px)."""
    for net, path in ((cifar_resnet(20, [16, 16, 32, 64], 1, 10), "layer1"), (wide_resnet(16, 2, 1, 10), "block1")):
        out: dict[str, torch.Tensor] = {}
        dict(net.named_modules())[path].register_forward_hook(lambda m, i, o, seen=out: seen.setdefault("x", o))
        net.eval()(torch.randn(1, 1, 28, 28))
        assert out["x"].shape[-2:] == (28, 28)


def test_depths_outside_the_family_are_refused() -> None:
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(21, [16, 16, 32, 64])
    with pytest.raises(ValueError, match="6n\\+4"):
        wide_resnet(18, 2)
    with pytest.raises(ValueError, match="one of"):
        small_vgg(10)
    with pytest.raises(ValueError, match="version"):
        small_shufflenet(3)


def test_residual_blocks_start_as_near_identity_maps_of_their_shortcut() -> None:
    """With zeroed residual branches a CIFAR ResNet block is ReLU(shortcut): the skip path is wired."""
    net = cifar_resnet(8, [16, 16, 32, 64], 1, 10).eval()
    block = net.layer1[0]
    torch.nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), torch.relu(x))
