"""Shared fixtures: the real config, composed once per test and shrunk to tiny models."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import kd  # noqa: F401  (torchvision compatibility step, resolvers)
from tests.cli import THREADS
from tests.paths import CONF

CONF_DIR = CONF
TINY = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "~logger"]
# Options of a modality compose with data and models of that modality (the data uses the teacher's tokenizer).
MODALITY_BASES = {"image": ["data=synthetic"],
                  "text": ["data=rotten_tomatoes", "teacher=text_tiny", "student=text_tiny"],
                  "lm": ["data=lm_fortunes", "teacher=llama_tiny", "student=llama_tiny"]}
PRETRAINED_LM = {("teacher", "smollm2"), ("student", "smollm2_l2"), ("student", "smollm2_cut")}  # convert the real SmolLM2 (about 20 s)


def slow_if_pretrained(group: str, option: str) -> list:
    """The ``slow`` mark for options that load the real SmolLM2."""
    return [pytest.mark.slow] if (group, option) in PRETRAINED_LM else []


TEXT_TINY = ["data=rotten_tomatoes", "data.module.train_subset=64", "teacher=text_tiny", "student=text_tiny",
             "trainer=smoke", "~logger"]


def compose_config(overrides: list[str], tmp_path: Path) -> DictConfig:
    """Compose ``conf/train.yaml`` with ``overrides``; outputs go to a new folder in ``tmp_path``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    runs = len(list(tmp_path.glob("run*")))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / f"run{runs}")
        cfg.paths.teacher_weights_dir = str(tmp_path / "teachers")
        cfg.paths.teacher_outputs_dir = str(tmp_path / "teacher_outputs")
        cfg.threads = THREADS
        cfg.progress_bar = False
    Path(cfg.paths.output_dir).mkdir(parents=True)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg("loss=feature", ...)``: the tiny test config plus extra overrides."""

    def make(*overrides: str, base: list[str] = TINY) -> DictConfig:
        return compose_config([*base, *overrides], tmp_path)

    return make


@pytest.fixture(scope="module")
def module_pretrained_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Converted checkpoints (``KD_PRETRAINED_DIR``) go to a folder of the using module's (the tokenizer
    converts in seconds; the weights in about 20 s)."""
    old = os.environ.get("KD_PRETRAINED_DIR")
    os.environ["KD_PRETRAINED_DIR"] = str(tmp_path_factory.mktemp("pretrained"))
    yield
    os.environ.pop("KD_PRETRAINED_DIR") if old is None else os.environ.__setitem__("KD_PRETRAINED_DIR", old)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
