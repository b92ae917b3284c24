"""Start-up checks: everything a run can find wrong before it trains anything (teacher included).

``preflight`` builds throw-away copies of the student, the (untrained) teacher and the loss, and
runs one real training batch through them without an update. That surfaces, before the teacher
stage: unknown tap aliases or module paths, feature shapes no connector can bridge, losses that
need batch indices or features the data or models do not provide, and models whose class count
differs from the data's. The output folder is checked for being writable first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from kd.errors import ConfigError, RunError, describe_write_error
from kd.taps import call_model
from kd.training import build_loss, build_module


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


def preflight(cfg: DictConfig, datamodule: L.LightningDataModule, needs_teacher: bool) -> None:
    """Run the start-up checks (see the module docstring); raises :class:`ConfigError`."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    student: nn.Module = instantiate(cfg.student.net)
    teacher: nn.Module | None = instantiate(cfg.teacher.net) if needs_teacher else None
    check_class_counts(
        {"student": student, "teacher": teacher} if teacher else {"student": student}, datamodule.example_inputs(), cfg
    )
    module = build_module(cfg, datamodule, student, build_loss(cfg.loss), teacher)
    if getattr(datamodule, "train_size", None):
        module.loss.bind_train_size(datamodule.train_size)
    batch = next(iter(datamodule.train_dataloader()))
    module.train()
    try:
        module.training_step(batch, 0)
    except RunError:
        pass  # an untrained teacher's outputs may overflow; finiteness is watched during training
