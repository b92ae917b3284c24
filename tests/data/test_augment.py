"""Augmentation is a config (issue 37): a list of transforms, each doing what it says, whose views are a
pure function of (batch, view_seed); the default list gives the views kd gave before it was a list."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kd.config.migrations import augment_list
from kd.data.augment import (
    BrightnessContrast,
    HorizontalFlip,
    RandomErasing,
    RandomShift,
    Transform,
    VerticalFlip,
    apply,
    seeded_view,
)
from kd.data.augment_config import STANDARD, augment_problem, transforms_of
from kd.data.image import ImageDataModule
from kd.data.synthetic import SyntheticImages
from kd.errors import ConfigError
from tests.paths import CONF

DEFAULT_LIST = [{"_target_": "kd.data.augment.RandomShift", "pixels": 2},
                {"_target_": "kd.data.augment.HorizontalFlip", "p": 0.5}]


class GaussianNoise(Transform):
    """docs/images.md's example of your own transform."""

    def __init__(self, std: float = 0.1) -> None:
        if isinstance(std, bool) or not isinstance(std, int | float) or not 0 <= std < float("inf"):
            raise ValueError(f"std={std!r}: must be a finite number >= 0")
        self.std = std

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        return images + self.std * noise


def old_random_shift_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """kd's fixed augmentation before issue 37 (``kd.data.augment.random_shift_flip``), verbatim."""
    max_shift = 2
    b, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None]
    images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    mirror = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
    return images.contiguous()


def fashion_mnist_transforms() -> tuple[Transform, ...]:
    """The transforms conf/data/fashion_mnist.yaml builds (as Hydra instantiates the data module)."""
    module = OmegaConf.load(CONF / "data/fashion_mnist.yaml").module
    module.source = {"_target_": "kd.data.synthetic.SyntheticImages", "train_size": 8, "val_size": 8, "test_size": 8}
    return instantiate(module).augment


def test_the_default_list_gives_the_views_of_before_bit_for_bit() -> None:
    images = torch.randn(64, 1, 28, 28)
    transforms = fashion_mnist_transforms()
    assert transforms == STANDARD == transforms_of(True) == transforms_of(DEFAULT_LIST)
    for seed in (0, 7, 123456789):
        before = old_random_shift_flip(images, torch.Generator().manual_seed(seed))
        assert torch.equal(seeded_view(images, seed, transforms), before)


def test_a_view_is_a_pure_function_of_the_batch_and_its_seed() -> None:
    images = torch.randn(16, 3, 12, 12)
    transforms = (RandomShift(3), HorizontalFlip(), VerticalFlip(0.3), RandomErasing(), BrightnessContrast())
    torch.manual_seed(1)
    first = seeded_view(images, 1234, transforms)
    torch.manual_seed(2)
    torch.rand(100)  # whatever else drew from the global generator does not matter
    assert torch.equal(seeded_view(images, 1234, transforms), first)
    assert not torch.equal(seeded_view(images, 1235, transforms), first)
    assert not torch.equal(seeded_view(images, 1234, transforms[:-1]), first)  # the list is part of the view


def test_each_transform_does_what_it_says() -> None:
    images, g = torch.randn(32, 2, 8, 8), torch.Generator().manual_seed(0)
    assert torch.equal(apply((RandomShift(0),), images, g), images)  # shift 0 is the identity
    assert torch.equal(apply((HorizontalFlip(1),), images, g), images.flip(-1))
    assert torch.equal(apply((VerticalFlip(1),), images, g), images.flip(-2))
    assert torch.equal(apply((HorizontalFlip(0), VerticalFlip(0), RandomErasing(0)), images, g), images)
    torch.testing.assert_close(apply((BrightnessContrast(0, 0),), images, g), images)  # up to rounding
    assert torch.equal(apply((), images, g), images)
    flipped = apply((HorizontalFlip(0.5),), images, g)
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True)]
    kept = [torch.equal(f, i) for f, i in zip(flipped, images, strict=True)]
    assert all(a or b for a, b in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    shifted = apply((RandomShift(2),), torch.ones(64, 1, 8, 8), g)
    lost = 64 - shifted.sum(dim=(1, 2, 3))  # zero fill: at most 2 rows and 2 columns of 8
    assert (lost >= 0).all() and (lost <= 64 - 36).all() and (lost > 0).any()


def test_erasing_and_jitter_stay_in_their_bounds() -> None:
    images, g = torch.ones(64, 3, 10, 10), torch.Generator().manual_seed(0)
    erased = apply((RandomErasing(p=1, max_size=0.5, value=-1.0),), images, g)
    per_image = (erased == -1).all(dim=1).sum(dim=(1, 2))  # every channel of a pixel together
    assert ((erased == -1) | (erased == 1)).all() and (per_image >= 1).all() and (per_image <= 25).all()
    images = torch.randn(64, 1, 6, 6)
    jittered = apply((BrightnessContrast(brightness=0.5, contrast=0.25),), images, g)
    means, deviations = images.mean(dim=(1, 2, 3)), images - images.mean(dim=(1, 2, 3), keepdim=True)
    offset = jittered.mean(dim=(1, 2, 3)) - means
    spread = (jittered - jittered.mean(dim=(1, 2, 3), keepdim=True)).flatten(1).norm(dim=1)
    factor = spread / deviations.flatten(1).norm(dim=1)
    assert (offset.abs() <= 0.5 + 1e-5).all() and ((factor >= 0.75 - 1e-5) & (factor <= 1.25 + 1e-5)).all()


def test_a_transform_describes_itself_as_its_config() -> None:
    assert RandomErasing(p=1).description() == {"_target_": "kd.data.augment.RandomErasing", "p": 1.0,
                                                "max_size": 0.5, "value": 0.0}
    assert repr(HorizontalFlip()) == "HorizontalFlip(p=0.5)" and HorizontalFlip(0.5) != HorizontalFlip(1)
    assert [t.description() for t in STANDARD] == DEFAULT_LIST == augment_list(True)
    assert augment_list(False) == augment_list(None) == [] and augment_list(DEFAULT_LIST) == DEFAULT_LIST


@pytest.mark.parametrize(("value", "phrase"), [
    ([{"_target_": "kd.data.augment.HorizontalFlip", "p": 2}], "item 0: HorizontalFlip: p=2: must be a number between 0 and 1"),
    ([{"_target_": "kd.data.augment.RandomShift", "pixels": -1}], "pixels=-1: must be an integer >= 0"),
    ([{"_target_": "kd.data.augment.RandomShift", "pixels": 1.5}], "pixels=1.5: must be an integer >= 0"),
    ([{"_target_": "kd.data.augment.RandomErasing", "max_size": 0}], "max_size=0: must be a number > 0 and <= 1"),
    ([{"_target_": "kd.data.augment.HorizontalFlip", "q": 1}], "unexpected keyword argument 'q' (its arguments: p)"),
    ([*DEFAULT_LIST, {"_target_": "kd.data.augment.Rotate"}], "item 2: _target_=kd.data.augment.Rotate: cannot import it"),
    ([{"_target_": "torch.nn.Identity"}], "is not a kd.data.augment.Transform (kd's: kd.data.augment.RandomShift,"),
    (["flip"], "item 0 ('flip') must be a mapping with a _target_"),
    (3, "must be a list of mappings, each a _target_ (a kd.data.augment.Transform; kd's: kd.data.augment.RandomShift,"),
    ("flip", "must be a list of mappings"),
])
def test_a_bad_transform_list_says_what_is_valid(value, phrase: str) -> None:
    problem = augment_problem(value)
    assert problem is not None and phrase in problem, problem
    with pytest.raises(ConfigError, match=r"^data\.module\.augment="):
        ImageDataModule(SyntheticImages(), augment=value)


def test_the_data_module_applies_its_list_to_training_batches_only() -> None:
    dm = ImageDataModule(SyntheticImages(train_size=8, val_size=8, test_size=8), batch_size=8,
                         augment=[{"_target_": "kd.data.augment.HorizontalFlip", "p": 1}])
    dm.setup()
    raw = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(raw, 0)["inputs"], raw["inputs"])
    dm.trainer = SimpleNamespace(training=True)
    assert torch.equal(dm.on_after_batch_transfer(raw, 0)["inputs"], raw["inputs"].flip(-1))
    assert dm.augment_description() == [{"_target_": "kd.data.augment.HorizontalFlip", "p": 1.0}]
    for off in (False, None, []):
        assert ImageDataModule(SyntheticImages(), augment=off).augment == ()


def test_your_own_transform_is_one_class_named_by_its_target() -> None:
    noise = {"_target_": "tests.data.test_augment.GaussianNoise", "std": 0.05}
    assert augment_problem([*DEFAULT_LIST, noise]) is None
    transforms = transforms_of([*DEFAULT_LIST, noise])
    assert transforms[-1].description() == noise and transforms[:2] == STANDARD
    images = torch.zeros(8, 1, 6, 6)
    assert torch.equal(seeded_view(images, 3, transforms), seeded_view(images, 3, transforms))
    assert 0 < seeded_view(images, 3, transforms[-1:]).std() < 0.1
    problem = augment_problem([{**noise, "std": -1}])
    assert problem == "item 0: GaussianNoise: std=-1: must be a finite number >= 0"
