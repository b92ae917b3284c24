"""A finished run's folder: its config, its best student and its teacher, rebuilt as PyTorch models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.config.rules import JOB_FILE
from kd.errors import ConfigError
from kd.jobs.job_record import FAILURE_FILE, resume_command
from kd.task import Task, task_of_record


def not_finished(folder: Path) -> str:
    """Why ``folder`` holds no finished run to export (no ``metrics.json`` or ``config_resolved.yaml``), and
    what to do: a missing folder, a run that failed (``failed.json``) or one that has not finished (its
    ``job.json`` gives the command that continues it)."""
    finished = "Give the folder of a finished run, e.g. outputs/runs/<date>/<time>."
    if not folder.is_dir():
        return f"{folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}. {finished}"
    if (failure := folder / FAILURE_FILE).is_file():
        record = json.loads(failure.read_text())
        return (f"{folder}: that run failed ({record.get('error_type')}: {record.get('error')}), so it has no "
                f"student to export; {folder / 'error.txt'} holds the traceback. Fix the cause and run it again.")
    if (job := folder / JOB_FILE).is_file():
        return (f"{folder}: that run has not finished (it writes metrics.json when it has tested its best "
                f"checkpoint). Continue it with `{resume_command(folder, json.loads(job.read_text()))}`, "
                "then export it.")
    return (f"{folder} holds no kd run (a run's folder holds job.json, and metrics.json once it has finished). "
            + finished)


class FinishedRun:
    """The files of a finished kd run: ``config_resolved.yaml``, ``metrics.json`` and the best checkpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        metrics_file, config_file = self.folder / "metrics.json", self.folder / "config_resolved.yaml"
        if not metrics_file.is_file() or not config_file.is_file():
            raise ConfigError(not_finished(self.folder))
        self.metrics: dict[str, Any] = json.loads(metrics_file.read_text())
        self.cfg = cast(DictConfig, OmegaConf.load(config_file))  # a run's config is a mapping
        self.checkpoint = self.find_checkpoint(self.metrics.get("best_checkpoint"))

    def find_checkpoint(self, recorded: str | None) -> Path:
        """The best checkpoint: in this folder's ``checkpoints/`` (a moved or copied run folder), else
        where the run recorded it."""
        if recorded:
            here = self.folder / "checkpoints" / Path(recorded).name
            for path in (here, Path(recorded)):
                if path.is_file():
                    return path
        raise ConfigError(
            f"{self.folder}: its best checkpoint {Path(recorded or '?').name} is neither in "
            f"{self.folder / 'checkpoints'} nor at {recorded!r}; nothing to export."
        )

    @property
    def task(self) -> Task:
        """What the run predicts (``kd.task``): decides the INT8 method and the figures shown."""
        return task_of_record(cast(dict[str, Any], OmegaConf.to_container(self.cfg)), self.metrics)

    def student(self) -> nn.Module:
        """The student network with the best checkpoint's weights, in eval mode."""
        net = instantiate(self.cfg.student.net)
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict({k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")})
        return net.eval()

    def teacher(self) -> nn.Module | None:
        """The run's teacher with its weights, in eval mode; None for a run without one."""
        path = self.metrics.get("teacher_ckpt")
        if self.metrics.get("job_type") != "distill" or not path or not Path(path).is_file():
            return None
        from kd.teacher.weights import load_teacher_weights

        net = instantiate(self.cfg.teacher.net)
        if not self.cfg.teacher.get("pretrained"):
            load_teacher_weights(net, path, self.cfg.teacher.name)
        return net.float().eval()

    def batches(self, split: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` batches (all if None) of the run's ``val`` or ``test`` split, as its data
        module batches them."""
        datamodule = instantiate(self.cfg.data.module)
        datamodule.prepare_data()
        datamodule.setup("fit" if split == "val" else "test")
        loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
        out: list[dict[str, Any]] = []
        for batch in loader:
            if limit is not None and len(out) >= limit:
                break
            out.append(batch)
        return out
