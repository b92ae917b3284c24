"""One training job: build the module, trainer, logger and callbacks from the config; fit; test."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.callbacks import EpochSummary
from kd.cost import first_batch, latency_ms, like_parameters, size_on_disk_mb
from kd.launch.hardware import job_hardware
from kd.launch.processes import SHARDED_NOT_MEASURED, is_rank_zero, pin_worker_command, sharded
from kd.lm.answers import stop_and_pad
from kd.lm.evaluation import report_language_model
from kd.lm.on_policy import StudentSamples, student_samples
from kd.losses.weighted_sum import WeightedSum
from kd.model_outputs import TeacherOutputs
from kd.models.checkpoints import load_weights
from kd.module import DistillModule
from kd.task import task_of_config
from kd.teacher_source import CacheEntry
from kd.utils.cores import cores_per_process
from kd.utils.files import write_text_atomically
from kd.utils.precision import stage_precision
from kd.utils.secrets import redact, save_config


def build_loss(loss_cfg: DictConfig) -> WeightedSum:
    """The weighted sum of the terms declared under ``loss.terms``."""
    terms = instantiate(loss_cfg.terms, _convert_="all")
    return WeightedSum(terms)


def build_module(
    cfg: DictConfig,
    datamodule: Any,
    student: nn.Module,
    loss: WeightedSum,
    teacher: nn.Module | None = None,
    teacher_outputs: Mapping[CacheEntry, TeacherOutputs] | None = None,
) -> DistillModule:
    """The one place a :class:`DistillModule` is built from the config (the run and the start-up check)."""
    return DistillModule(
        student=student,
        loss=loss,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        example_inputs=datamodule.example_inputs(),
        num_classes=cfg.data.num_classes,
        teacher=teacher,
        student_layers=cfg.student.get("layers"),
        teacher_layers=cfg.teacher.get("layers") if teacher is not None else None,
        channels_last=cfg.get("channels_last", False),
        teacher_outputs=teacher_outputs,
        task=task_of_config(cfg),
        on_policy=on_policy_samples(cfg, datamodule, loss),
    )


def on_policy_samples(cfg: DictConfig, datamodule: Any, loss: WeightedSum) -> StudentSamples | None:
    """``on_policy`` as a batch transform: blocks keep their first ``on_policy.prompt_tokens`` tokens;
    prompt/response rows keep their own prompt and the student answers it."""
    answer_after_prompt = None
    if getattr(datamodule, "prompts_end_where_labels_start", False):
        answer_after_prompt = stop_and_pad(datamodule.tokenizer)
    return student_samples(cfg, loss.needs_teacher, loss.active, answer_after_prompt)


def load_initial_weights(cfg: DictConfig, student: nn.Module) -> nn.Module:
    """``student`` with the weights of ``student.init_from`` when set (e.g. GKD from a supervised student)."""
    if init := cfg.student.get("init_from"):
        load_weights(student, init, "student.init_from", f"student={cfg.student.name}")
    return student


def show_progress_bar(setting: str | bool) -> bool:
    """``auto`` shows the Rich bar only when stdout is a terminal."""
    if setting == "auto":
        return sys.stdout.isatty()
    return bool(setting)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """A Trainer with the configured callbacks and logger, writing under ``paths.output_dir``."""
    callbacks: list[L.Callback] = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    progress_bar = show_progress_bar(cfg.get("progress_bar", "auto"))
    callbacks.append(RichProgressBar() if progress_bar else EpochSummary())
    logger: Any = instantiate(cfg.logger) if cfg.get("logger") else False  # a Lightning logger, or none
    if logger:
        logger.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        if type(logger).__name__ == "WandbLogger":  # the dashboard's per-run summary: the best, not the last
            task = task_of_config(cfg)
            logger.experiment.define_metric(task.best_metric, summary=task.mode)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, enable_progress_bar=progress_bar,
                       precision=stage_precision(cfg, "student"))


def finish_wandb(trainer: L.Trainer) -> None:
    """End this job's W&B run so the next job (multirun, teacher stage) starts its own."""
    if any(type(lg).__name__ == "WandbLogger" for lg in trainer.loggers):
        import wandb

        wandb.finish()


def deployment_cost(module: DistillModule, datamodule: L.LightningDataModule, batch_size: int) -> dict[str, float]:
    """Size on disk and CPU latency per batch of ``batch_size`` test inputs, student and teacher."""
    inputs = first_batch(next(iter(datamodule.test_dataloader())), batch_size)
    module.eval()
    cost = {"student/size_mb": size_on_disk_mb(module.student), "student/latency_ms": latency_ms(module, like_parameters(inputs, module.student))}
    if module.teacher is not None:
        teacher = module.teacher_taps
        assert teacher is not None  # built with the teacher

        def teacher_forward(x: Any) -> Any:
            return teacher(module.prepare_inputs(x))

        cost.update(
            {
                "teacher/size_mb": size_on_disk_mb(module.teacher),
                "teacher/latency_ms": latency_ms(teacher_forward, like_parameters(inputs, module.teacher)),
            }
        )
    return {k: round(v, 3) for k, v in cost.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def best_checkpoint(callback: ModelCheckpoint | None) -> str | None:
    """The best checkpoint: Lightning restores its path as a resumed run wrote it, so look in a moved run's folder."""
    if callback is None or not callback.best_model_path:
        return None
    best, moved = Path(callback.best_model_path), Path(callback.dirpath or "") / Path(callback.best_model_path).name
    return str(moved if not best.is_file() and moved.is_file() else best)


def fit_and_test(
    cfg: DictConfig,
    datamodule: L.LightningDataModule,
    loss: WeightedSum,
    teacher: nn.Module | None,
    extra: dict[str, Any] | None = None,
    teacher_outputs: Mapping[CacheEntry, TeacherOutputs] | None = None,
    ckpt_path: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``cfg.student`` on ``loss`` (against ``teacher`` if given), test the best checkpoint.

    ``teacher_outputs`` (by cache entry, from ``kd.teacher.cache``) replace teacher forward passes;
    ``ckpt_path`` continues training from that checkpoint (``resume``).

    Returns the student, holding the best-validation weights, and the job's metrics (plus
    ``extra``), which are also written to ``<paths.output_dir>/metrics.json``.
    """
    output_dir, writer = Path(cfg.paths.output_dir), is_rank_zero()  # several processes: rank 0 writes
    output_dir.mkdir(parents=True, exist_ok=True)
    if writer:
        save_config(cfg, output_dir / "config_resolved.yaml")
    student = load_initial_weights(cfg, instantiate(cfg.student.net))
    generation = cast(dict[str, int], OmegaConf.to_container(cfg.data.generation)) if cfg.data.get("generation") else None
    module = build_module(cfg, datamodule, student, loss, teacher, teacher_outputs)
    if cfg.get("compile", False):
        student.compile()  # in place: hooks, state-dict keys and checkpoints stay as without compile
    trainer = build_trainer(cfg)
    try:
        if trainer.world_size > 1:  # after W&B has read the (redacted) command line
            pin_worker_command()  # Lightning re-runs this job's command for the other ranks
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_seconds = time.perf_counter() - start
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        start = time.perf_counter()
        best = best_checkpoint(cast(ModelCheckpoint | None, trainer.checkpoint_callback))  # the first ModelCheckpoint
        (test_metrics,) = trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True)
        test_seconds = time.perf_counter() - start
        measures = writer and not sharded(trainer)  # rank 0 alone: forward passes on whole models
        cost = deployment_cost(module, datamodule, cfg.get("latency_batch_size", 64)) if measures else {}
        if writer and not measures:
            print(f"[kd] {SHARDED_NOT_MEASURED}", flush=True)
        if generation and measures:  # language models: bits per byte, generations side by side, ms per token
            measured = {k: float(v) for k, v in test_metrics.items()}
            cost.update(
                report_language_model(datamodule, student, teacher, generation, measured, output_dir, trainer.loggers)
            )
        for logger in trainer.loggers:
            logger.log_metrics(cost)
    finally:
        finish_wandb(trainer)
    metrics: dict[str, Any] = {**fit_metrics, **{k: float(v) for k, v in test_metrics.items()}, **cost}
    metrics.update(
        {
            "job_type": cfg.get("job_type"),
            "task": task_of_config(cfg).name,
            "hardware": job_hardware(cfg).record(),
            "student/params": count_parameters(student),
            "teacher/params": count_parameters(teacher) if teacher is not None else None,
            "time/fit_s": round(fit_seconds, 2),
            "time/test_s": round(test_seconds, 2),
            "epochs": trainer.current_epoch,
            "best_checkpoint": best or None,
            **(extra or {}),
        }
    )
    if writer:
        write_text_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return student, metrics


def set_threads(threads: int | None, processes: int = 1) -> int:
    """Use ``threads`` torch threads, or this process's share of the cores among the ``processes`` of the
    job on this machine (``kd.utils.cores.cores_per_process``; oversubscribed cores run many times slower)."""
    count = threads or cores_per_process(processes)
    torch.set_num_threads(count)
    if processes > 1:  # Lightning's DDP would set its own count unless OMP_NUM_THREADS is set; the ranks inherit it
        os.environ["OMP_NUM_THREADS"] = str(count)
    return count
