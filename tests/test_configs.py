"""Every option of every config group composes, passes the config check with every key typed
(``kd/config/schema.py``), and every object in it instantiates."""

from __future__ import annotations

import functools

import lightning.pytorch as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kd.errors import ConfigError
from kd.jobs.scale_out import check_scale_out, strategy_name
from kd.jobs.validate import problems, uncovered, unread
from kd.losses.weighted_sum import WeightedSum
from kd.taps import call_model
from kd.task import MODALITIES
from kd.training import build_loss
from kd.utils.precision import apply_auto_precision
from tests.conftest import CONF_DIR, MODALITY_BASES, slow_if_pretrained

# conf/sweep holds multirun settings added with +sweep=<name>: tests/launch/test_sweep_files.py checks those.
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("sweep", "__pycache__"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]


def test_groups_required_by_the_design_exist() -> None:
    assert {"teacher", "student", "data", "loss", "optim", "trainer", "logger", "experiment"} <= set(GROUPS)


@functools.cache
def tiny_params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 2).parameters())


def check_instantiates(group: str, cfg) -> None:
    is_tokens = cfg.data.modality in ("text", "lm")
    if group == "data":
        dm = instantiate(cfg.data.module)
        assert isinstance(dm, L.LightningDataModule)
        example = dm.example_inputs(2)
        assert example["input_ids"].shape[0] == 2 if is_tokens else example.shape == (2, cfg.data.in_chans, 28, 28)
    elif group in ("teacher", "student"):
        net = instantiate(cfg[group].net).eval()
        inputs = instantiate(cfg.data.module).example_inputs(2) if is_tokens else torch.zeros(2, cfg.data.in_chans, 28, 28)
        out = call_model(net, inputs)
        assert out.shape[0] == 2 and out.shape[-1] == cfg.data.num_classes
    elif group == "loss":
        assert isinstance(build_loss(cfg.loss), WeightedSum)
    elif group == "optim":
        optimizer = instantiate(cfg.optim.optimizer)(tiny_params())
        scheduler = instantiate(cfg.optim.scheduler)(optimizer, total_steps=10)
        optimizer.step()
        scheduler.step()
    elif group == "trainer" and strategy_name(cfg).startswith("fsdp") and not torch.cuda.is_available():
        assert isinstance(instantiate(cfg.trainer.strategy), L.strategies.Strategy)  # the Trainer needs CUDA
        with pytest.raises(ConfigError, match="CUDA GPUs only"):
            check_scale_out(cfg)
    elif group == "trainer":
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert isinstance(trainer, L.Trainer)
    elif group == "callbacks":
        assert all(isinstance(instantiate(c), L.Callback) for c in cfg.callbacks.values())
    elif group == "logger":
        logger = instantiate(cfg.logger)
        assert isinstance(logger, L.loggers.Logger)
        assert getattr(logger, "_offline", True), "W&B must default to offline mode"
    else:  # paths, hydra, experiment: composing is the check
        assert cfg.data.name and cfg.student.name


@pytest.mark.parametrize(
    ("group", "option"),
    [pytest.param(g, o, marks=slow_if_pretrained(g, o)) for g, o in OPTIONS],
    ids=[f"{g}={o}" for g, o in OPTIONS],
)
def test_option_composes_and_instantiates(make_cfg, group: str, option: str) -> None:
    if group == "hydra":
        cfg = make_cfg(base=[])  # the hydra group is selected by train.yaml itself
    else:
        cfg = make_cfg(f"{group}={option}", base=[])
        modality = OmegaConf.select(cfg, f"{group}.modality")
        if modality in ("text", "lm"):  # the option under test overrides its base's choice
            cfg = make_cfg(f"{group}={option}", base=MODALITY_BASES[modality])
    assert problems(cfg) == {}
    assert uncovered(cfg) == []  # a key with neither a rule in kd/config/schema.py nor a typed parameter
    assert unread(cfg) == {}  # e.g. an argument that its _target_ does not take
    apply_auto_precision(cfg)  # as a job does first: trainer.precision and net.dtype `auto` decided
    check_instantiates(group, cfg)


MODEL_OPTIONS = [(g, o) for g, o in OPTIONS if g in ("data", "student", "teacher")]


@pytest.mark.parametrize(("group", "option"), MODEL_OPTIONS, ids=[f"{g}={o}" for g, o in MODEL_OPTIONS])
def test_data_and_models_declare_their_modality(make_cfg, group: str, option: str) -> None:
    cfg = make_cfg(f"{group}={option}", base=[])
    assert cfg[group].modality in MODALITIES


def test_a_teacher_reuses_its_model_config(make_cfg) -> None:
    """conf/teacher/resnet18.yaml is conf/student/resnet18.yaml plus how the teacher is trained."""
    cfg = make_cfg("student=resnet18", "teacher=resnet18", base=[])
    teacher = OmegaConf.to_container(cfg.teacher)
    assert {k: teacher.pop(k) for k in ("ckpt", "seed", "epochs", "precision")} == {"ckpt": None, "seed": 0, "epochs": 10,
                                                                                   "precision": None}
    assert teacher == OmegaConf.to_container(cfg.student)
    assert "net:" not in (CONF_DIR / "teacher" / "resnet18.yaml").read_text()


def test_default_config_is_the_documented_experiment(make_cfg) -> None:
    cfg = make_cfg(base=[])
    assert (cfg.data.name, cfg.teacher.name, cfg.student.name) == ("fashion_mnist_5k", "resnet20", "resnet10_w8")
    assert (cfg.teacher.epochs, cfg.trainer.max_epochs, cfg.loss.temperature, cfg.loss.alpha) == (10, 30, 4.0, 0.9)
    assert (cfg.data.module.augment, cfg.data.module.source.train_subset) == (False, 5000)
    # the teacher stage learns from the whole training split: the plain fashion_mnist config
    assert OmegaConf.to_container(cfg.data.teacher_data) == OmegaConf.to_container(make_cfg("data=fashion_mnist", base=[]).data)
    assert cfg.logger._target_.endswith("WandbLogger") and cfg.logger.offline is True
    pinned = make_cfg("experiment=fmnist_resnet20_to_resnet10_w8", base=[])
    recipe = ("data", "teacher", "student", "loss", "optim", "trainer", "seed")
    def plain(c):  # unresolved: the two configs write to different run folders
        return {k: OmegaConf.to_container(c, resolve=False)[k] for k in recipe}

    assert plain(pinned) == plain(cfg)


def test_no_loss_config_names_a_module_path(make_cfg) -> None:
    # Loss configs use tap aliases only; module paths live in the model configs.
    for path in sorted((CONF_DIR / "loss").glob("*.yaml")):
        text = path.read_text()
        assert "layer1" not in text and "layer3" not in text and "encoder." not in text, path.name
