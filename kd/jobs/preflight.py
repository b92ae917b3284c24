"""Start-up checks: everything a run can find wrong before it trains anything (teacher included).

``preflight`` builds throw-away copies of the student, the (untrained) teacher and the loss, and
runs one real training batch through them without an update. That surfaces, before the teacher
stage: unknown tap aliases or module paths, feature shapes no connector can bridge, losses that
need batch indices or features the data or models do not provide, and models whose class count
differs from the data's. The output folder is checked for being writable first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.data.checks import check_classification_data
from kd.errors import ConfigError, RunError, describe_write_error
from kd.jobs.records import root_cause
from kd.launch.processes import process_count
from kd.lm.evaluation import check_generation, context_length
from kd.taps import call_model
from kd.task import task_of_config
from kd.teacher.cache_plan import cache_settings, check_cache_request, top_k_temperature
from kd.teacher.generations import generation_settings
from kd.teacher.responses import check_teacher_responses, uses_teacher_responses
from kd.teacher.weights import (
    check_teacher_stage,
    check_trained_teacher_data,
    pretrained_weights_file,
    teacher_optim,
    trains_teacher,
)
from kd.training import build_loss, build_module, load_initial_weights


def check_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` and write a probe file in it, or raise a :class:`ConfigError` saying why not."""
    probe = output_dir / f".kd_write_probe.{os.getpid()}"  # one per process: ranks share the folder
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"0" * 4096)
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as err:
        message = describe_write_error(err, output_dir) or f"could not write {output_dir}: {err}"
        raise ConfigError(f"paths.output_dir: {message}") from None


def _classes(logits: torch.Tensor) -> int:
    return int(logits.shape[-1])


def check_class_counts(nets: dict[str, nn.Module], inputs: Any, cfg: DictConfig) -> None:
    """Student and teacher logits must have ``data.num_classes`` entries."""
    wanted = int(cfg.data.num_classes)
    for role, net in nets.items():
        was_training = net.training
        with torch.no_grad():
            count = _classes(call_model(net.eval(), inputs))
        net.train(was_training)
        if count != wanted:
            raise ConfigError(
                f"{role}={cfg[role].name} outputs {count} classes but data={cfg.data.name} has {wanted} "
                f"(data.num_classes). Set {role}.net.num_classes=${{data.num_classes}} (the default) or pick a "
                f"{role} for this data set."
            )


def build_model(cfg: DictConfig, role: str) -> nn.Module:
    """``<role>.net`` instantiated; a config error inside the model's factory names the role's key."""
    try:
        return instantiate(cfg[role].net)
    except InstantiationException as err:
        cause = root_cause(err)
        if isinstance(cause, ConfigError):
            message = str(cause)
            key = f"{role}.{message}" if message.startswith(("net.", "net:")) else f"{role}.net: {message}"
            raise ConfigError(f"{key} ({role}={cfg[role].name})") from None
        raise


def check_context(cfg: DictConfig, nets: dict[str, nn.Module]) -> None:
    """A language model's training block must fit every model's context (``max_position_embeddings``)."""
    block = int(cfg.data.module.block_size)
    for role, net in nets.items():
        limit = context_length(net)
        if limit is not None and block > limit:
            raise ConfigError(
                f"data.module.block_size={block} is longer than the {role}'s context of {limit} positions "
                f"({role}={cfg[role].name}, its max_position_embeddings); choose a block_size of at most {limit}"
            )


def check_validation_interval(cfg: DictConfig, datamodule: Any) -> None:
    """``trainer.val_check_interval`` as a step count must fit in an epoch's training batches (Lightning
    refuses it only once training starts, after the teacher stage and the cache)."""
    interval = OmegaConf.select(cfg, "trainer.val_check_interval")
    train = getattr(datamodule, "splits", {}).get("train")
    if not isinstance(interval, int) or isinstance(interval, bool) or train is None:
        return
    batches = math.ceil(math.ceil(len(train) / process_count(cfg)) / datamodule.batch_size)
    limit = OmegaConf.select(cfg, "trainer.limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    if interval > batches:
        raise ConfigError(
            f"trainer.val_check_interval={interval} steps, but an epoch has {batches} training batches "
            f"({len(train)} training samples, data.module.batch_size={datamodule.batch_size}, "
            f"trainer.limit_train_batches={limit}); give at most {batches}, or a fraction of an epoch (e.g. 1.0)"
        )


def check_optimizer(optim: DictConfig, key: str, model: nn.Module) -> None:
    """``<key>.optimizer`` (and ``<key>.scheduler``) built on ``model``'s parameters, as training will build
    them; what the optimiser or scheduler refuses (a negative learning rate, an unknown argument) is
    refused here, naming the key."""
    for part in ("optimizer", "scheduler"):
        if optim.get(part) is None:
            continue
        try:
            factory = instantiate(optim[part])
            if part == "optimizer":
                optimizer = factory(model.parameters())
            else:
                factory(optimizer, total_steps=100)
        except (InstantiationException, TypeError, ValueError) as err:
            cause = root_cause(err)
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
            raise ConfigError(f"{key}.{part}: {reason}") from None


def preflight(cfg: DictConfig, datamodule: L.LightningDataModule, needs_teacher: bool) -> dict[str, int]:
    """Run the start-up checks (see the module docstring); raises :class:`ConfigError`. Returns what the
    data checks report (``data/train_test_duplicates`` for classification data)."""
    loss = build_loss(cfg.loss)
    settings = cache_settings(cfg)
    if settings["cache"] is not False:
        top_k_temperature(loss, settings["top_k"])
    datamodule.prepare_data()
    datamodule.setup("fit")
    report = {}
    if not task_of_config(cfg).language_model and hasattr(datamodule, "splits"):
        source = getattr(datamodule, "source", None)
        found = check_classification_data(datamodule.splits, int(cfg.data.num_classes), cfg.data.name,
                                          getattr(source, "input_shape", None))
        report = {f"data/{k}": v for k, v in found.items()}
        if found["train_test_duplicates"]:
            print(f"[kd] data: {found['train_test_duplicates']} test samples are exact copies of training samples",
                  flush=True)
    check_validation_interval(cfg, datamodule)
    student: nn.Module = load_initial_weights(cfg, build_model(cfg, "student"))  # a file that does not fit: now
    check_teacher_responses(cfg, datamodule)
    generates = bool(cfg.loss.get("teacher_generations")) or uses_teacher_responses(cfg)  # the teacher writes the texts
    teacher: nn.Module | None = build_model(cfg, "teacher") if needs_teacher or generates else None
    nets = {"student": student, "teacher": teacher} if teacher else {"student": student}
    check_class_counts(nets, cast(Any, datamodule).example_inputs(), cfg)  # kd.data's modules define it
    if task_of_config(cfg).language_model:
        check_context(cfg, nets)
    if cfg.data.get("generation"):
        check_generation(cast(dict[str, int], OmegaConf.to_container(cfg.data.generation)), nets)
    if cfg.loss.get("teacher_generations"):
        generation_settings(cfg)
    if teacher is not None:
        check_teacher_stage(cfg)
        check_trained_teacher_data(cfg)
        if trains_teacher(cfg):
            check_optimizer(teacher_optim(cfg), "teacher.optim" if cfg.teacher.get("optim") else "optim", teacher)
        has_weights = trains_teacher(cfg) or bool(cfg.teacher.get("ckpt")) or pretrained_weights_file(teacher) is not None
        check_cache_request(cfg, datamodule, loss, has_weights)
    check_optimizer(cfg.optim, "optim", student)
    module = build_module(cfg, datamodule, student, loss, teacher if needs_teacher else None)
    if train_size := getattr(datamodule, "train_size", None):
        module.loss.bind_train_size(train_size)
    batch = next(iter(datamodule.train_dataloader()))
    module.train()
    try:
        module.training_step(batch, 0)
    except RunError:
        pass  # an untrained teacher's outputs may overflow; finiteness is watched during training
    return report
