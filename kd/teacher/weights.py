"""Teacher weights: load a given checkpoint, or train the teacher once and keep it under
``paths.teacher_weights_dir`` for every later job with the same teacher and data config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from kd.config.identities import keys_entering, view
from kd.config.migrations import AUGMENT_TRUE, augment_list
from kd.config.rules import TEACHER
from kd.errors import ConfigError
from kd.launch.processes import SINGLE_PROCESS, is_rank_zero, wait_for_rank_zero
from kd.losses.ce import HardLabelCE
from kd.losses.weighted_sum import WeightedSum
from kd.models.checkpoints import load_weights
from kd.teacher.learned_data import check_learned_data, write_learned_data
from kd.training import fit_and_test
from kd.utils.files import build_lock, write_atomically
from kd.utils.hashing import config_identity, identity_hash
from kd.utils.precision import stage_precision


def data_identity(cfg: DictConfig) -> dict[str, Any]:
    """The data keys that enter the teacher's identity (``kd.config.schema``: not paths or the eval batch
    size) as plain data, secrets redacted (they do not change the samples, and this lands in cache records).
    ``module.augment`` reads as before transforms were a list (``true`` for the standard list, ``false`` for
    none), so teachers trained before keep their folders, and both spellings name one teacher."""
    found = cast(dict[str, Any], view(config_identity(cfg.data), "data", TEACHER))
    module = found.get("module")
    if isinstance(module, dict) and "augment" in module:
        listed = augment_list(module["augment"])
        module["augment"] = True if listed == AUGMENT_TRUE else (False if listed == [] else listed)
    return found


def teacher_identity(cfg: DictConfig) -> dict[str, Any]:
    """Everything that determines the trained teacher's weights, as plain data."""
    return {
        "net": view(config_identity(cfg.teacher.net), "teacher.net", TEACHER),
        "epochs": cfg.teacher.epochs,
        "data": data_identity(cfg),
        "optim": OmegaConf.to_container(teacher_optim(cfg), resolve=True),
        "trainer": {k: stage_precision(cfg, "teacher") if k == "precision" else cfg.trainer.get(k)
                    for k in keys_entering("trainer", TEACHER)},
        "seed": teacher_seed(cfg),
        "channels_last": cfg.get("channels_last", False),
    }


def teacher_seed(cfg: DictConfig) -> int:
    """``teacher.seed`` when set (students of any ``seed`` then share one teacher), else ``seed``."""
    seed = cfg.teacher.get("seed", None)
    return cfg.seed if seed is None else seed


def teacher_optim(cfg: DictConfig) -> DictConfig:
    """``teacher.optim`` when the teacher config declares one (e.g. AdamW for transformers), else ``optim``."""
    return cfg.teacher.get("optim") or cfg.optim


def teacher_stage_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` as the teacher stage sees it: ``data`` is ``data.teacher_data`` where the data config
    names one (a student with a labelled budget, a teacher that learns from the whole split)."""
    if cfg.data.get("teacher_data") is None:
        return cfg
    for key in ("modality", "num_classes", "in_chans"):
        mine, theirs = cfg.data.get(key), cfg.data.teacher_data.get(key)
        if mine != theirs:
            raise ConfigError(
                f"data.teacher_data.{key}={theirs} differs from data.{key}={mine}: the teacher learns the "
                "student's task from more or other samples of it. Give a data config with the same "
                f"{key}, or remove data.teacher_data (the teacher then learns from data)."
            )
    tcfg = copy.deepcopy(cfg)
    with open_dict(tcfg):
        tcfg.data = tcfg.data.teacher_data
    return tcfg


def teacher_weights_dir(cfg: DictConfig) -> Path:
    """``<paths.teacher_weights_dir>/<teacher>-<data>-<hash of the teacher+data config>``."""
    key = identity_hash(teacher_identity(cfg), 12)
    return Path(cfg.paths.teacher_weights_dir) / f"{cfg.teacher.name}-{cfg.data.name}-{key}"


def load_teacher_weights(net: nn.Module, path: str | Path, name: str) -> None:
    """Load a plain state dict or a kd/Lightning checkpoint (``student.*`` weights) into ``net``."""
    load_weights(net, path, "teacher.ckpt", f"teacher={name}", "Give a file, or teacher.ckpt=null to train one.")


def _train_teacher(cfg: DictConfig, datamodule: L.LightningDataModule, folder: Path) -> None:
    tcfg = copy.deepcopy(cfg)
    with open_dict(tcfg):
        tcfg.student = cfg.teacher
        tcfg.optim = teacher_optim(cfg)
        tcfg.trainer.max_epochs = cfg.teacher.epochs
        tcfg.trainer.precision = stage_precision(cfg, "teacher")
        tcfg.paths.output_dir = str(folder)
        tcfg.job_type = "teacher"
        tcfg.trainer.update(SINGLE_PROCESS)  # the other ranks of a multi-process job wait for it
        if "on_policy" in tcfg:  # the teacher learns from the corpus only
            tcfg.on_policy.lmbda = 0.0
        if "run" in tcfg:
            tcfg.run.name = f"teacher {cfg.teacher.name} on {cfg.data.name}"
    L.seed_everything(teacher_seed(cfg), workers=True)
    loss = WeightedSum({"ce": {"weight": 1.0, "fn": HardLabelCE()}})
    print(f"[kd] training teacher {cfg.teacher.name} on {cfg.data.name} for {cfg.teacher.epochs} epochs -> {folder}", flush=True)
    net, _ = fit_and_test(tcfg, datamodule, loss, teacher=None)
    write_learned_data(folder, cfg.data)
    write_atomically(folder / "teacher.ckpt", lambda tmp: torch.save(net.state_dict(), tmp))


def trains_teacher(cfg: DictConfig) -> bool:
    """Whether the teacher comes from a teacher stage here (neither ``teacher.ckpt`` nor pretrained as loaded)."""
    return not (cfg.teacher.get("ckpt") or cfg.teacher.get("pretrained"))


def check_teacher_stage(cfg: DictConfig) -> None:
    """What the teacher stage would refuse, refused before it: ``teacher.epochs`` below 1, and
    ``data.teacher_data`` of another task than the student's."""
    if not trains_teacher(cfg):
        return
    teacher_stage_config(cfg)
    if cfg.teacher.epochs < 1:
        raise ConfigError(
            f"teacher.epochs={cfg.teacher.epochs}: a teacher trained here needs at least 1 epoch "
            "(0 is for pretrained teachers, teacher.pretrained=true), or give teacher.ckpt"
        )


def check_trained_teacher_data(cfg: DictConfig) -> None:
    """The teacher trained here before for this config must have learned from the files the data config
    names as they are now (``kd.teacher.learned_data``; ``data.teacher_data``'s where set)."""
    if trains_teacher(cfg):
        stage_cfg = teacher_stage_config(cfg)
        check_learned_data(teacher_weights_dir(stage_cfg), stage_cfg.data)


def pretrained_weights_file(net: nn.Module) -> Path | None:
    """A pretrained model's ``model.safetensors`` (what keys its cached outputs), if it was loaded from one."""
    weights = Path(str(getattr(net, "name_or_path", ""))) / "model.safetensors"
    return weights if weights.is_file() else None


def prepare_teacher(cfg: DictConfig, datamodule: L.LightningDataModule) -> tuple[nn.Module, Path | None]:
    """The frozen teacher network and the checkpoint it came from.

    ``teacher.pretrained`` (a pretrained language model): the network as loaded. ``teacher.ckpt`` set:
    load it. Otherwise reuse the trained teacher kept for this teacher and data config (``data.teacher_data``
    where set), training it first if no job has yet (a file lock makes parallel jobs wait).
    """
    net = instantiate(cfg.teacher.net)
    if cfg.teacher.get("pretrained") and not cfg.teacher.get("ckpt"):  # used as loaded: no teacher stage
        print(f"[kd] teacher {cfg.teacher.name}: pretrained weights as loaded", flush=True)
        return net, pretrained_weights_file(net)
    if cfg.teacher.get("ckpt"):
        ckpt = Path(cfg.teacher.ckpt)
    else:
        check_teacher_stage(cfg)
        stage_cfg = teacher_stage_config(cfg)
        folder = teacher_weights_dir(stage_cfg)
        folder.mkdir(parents=True, exist_ok=True)
        ckpt = folder / "teacher.ckpt"
        if not is_rank_zero():  # several processes: rank 0 trains the teacher (written whole, by rename)
            failed = Path(cfg.paths.output_dir) / "failed.json"
            wait_for_rank_zero(lambda: ckpt if ckpt.is_file() else None, f"the teacher {ckpt}", failed)
        else:
            trained = False
            if not ckpt.is_file():  # written whole by rename: finding it needs no lock
                with build_lock(folder / ".lock"):  # parallel jobs train it once
                    if not ckpt.is_file():
                        if stage_cfg is not cfg:
                            datamodule = instantiate(stage_cfg.data.module)
                        _train_teacher(stage_cfg, datamodule, folder)
                        trained = True
            if not trained:
                print(f"[kd] reusing trained teacher {ckpt}", flush=True)
    load_teacher_weights(net, ckpt, cfg.teacher.name)
    return net, ckpt
