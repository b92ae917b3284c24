"""Small callbacks: one line of metrics per epoch; the time from process start to the first step."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as L
import torch

from kd.finite import on_any_process
from kd.launch.processes import is_rank_zero
from kd.utils.files import temporary_path
from kd.utils.process_clock import seconds_since_process_start

# Epoch-level values kd logs are synced Metrics or rank 0's own timings (multi-process training).
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")
SHOWN = ("train/acc", "val/acc", "val/acc_best", "val/ppl", "val/ppl_best", "val/agreement")


class EpochSummary(L.Callback):
    """Prints ``epoch k/n  train/acc …  val/acc …  (s)`` at the end of each training epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = "  ".join(f"{k} {float(metrics[k]):.4f}" for k in SHOWN if k in metrics)
        seconds = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        if trainer.is_global_zero:  # one line per epoch, also with several processes
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  ({seconds:.0f} s)", flush=True)


class FirstStepTime(L.Callback):
    """Logs ``time/start_to_first_step_s``: seconds from process start to the end of the first optimiser step.

    It covers imports, config composition, data loading, the teacher stage (when it is cached) and
    the first step; for jobs after the first in a multirun it counts from the process start too.
    """

    def __init__(self) -> None:
        self.seconds: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.seconds is None:
            self.seconds = seconds_since_process_start()
            pl_module.log("time/start_to_first_step_s", self.seconds, on_step=False, on_epoch=True, batch_size=1)


class ResumePoint(L.Callback):
    """Writes ``<dirpath>/resume.ckpt`` every ``every_n_steps`` optimiser steps, so a killed run loses
    at most that many steps; ``resume=true`` continues from the newer of it and ``last.ckpt``.

    The file is written under a temporary name and then renamed, so a kill during the write leaves
    the previous resume point intact. The last step of an epoch is left to the epoch-end checkpoint.
    ``every_n_steps: 0`` turns the writing off.

    **On a cluster's warning signal** (``on_signal``: submitit's USR2 before a SLURM time limit or on
    preemption) it also writes one at the end of the step the signal arrived in (every process agrees
    on that step), and then hands the signal to the handler that owned it: submitit, which requeues
    the job; the requeued job continues from it (:func:`kd.jobs.resume.plan_resume`). It does so only
    where such a handler is installed; elsewhere the signal keeps its default action.

    On resume it also hands the training loader its saved position (``kd.data.batches``): Lightning
    only does that when nothing built the loader before the checkpoint was restored, and a step-wise
    LR schedule does (``trainer.estimated_stepping_batches``).
    """

    def __init__(self, dirpath: str, every_n_steps: int, on_signal: str | None = None) -> None:
        self.dirpath, self.every_n_steps = Path(dirpath), int(every_n_steps)
        self._loader_states: list[dict[str, Any]] = []
        self.warning = WarningSignal(on_signal)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
        self._loader_states = fit_loop.get("state_dict", {}).get("combined_loader") or []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader, states, self._loader_states = trainer.train_dataloader, self._loader_states, []
        if states and loader is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(states[0])
        self.warning.arm()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step, batch_idx = trainer.global_step, args[-1]
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches  # the epoch-end checkpoint follows
        if not last_of_epoch and self.warning.received_anywhere(pl_module.device):
            self.save(trainer)
            print(f"[kd] {self.warning.name} received: resume point written at step {step}; "
                  "handing the signal to the launcher (submitit requeues the job)", flush=True)
            self.warning.hand_on()
            return  # this step's resume point is written
        if self.every_n_steps <= 0 or step % self.every_n_steps or last_of_epoch:
            return
        self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.warning.received:  # came at an epoch's last step: last.ckpt is the resume point
            self.warning.hand_on()
        self.warning.disarm()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.warning.disarm()

    def save(self, trainer: L.Trainer) -> None:
        """Write ``resume.ckpt`` (every process takes part; rank 0 writes the file)."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / "resume.ckpt"
        tmp = temporary_path(path)
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # everything a resume needs (optimiser, loops)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk: no half-written checkpoint stays
            raise
        if trainer.is_global_zero:  # several processes: rank 0 wrote the file (save_checkpoint waits for it)
            os.replace(tmp, path)


class WarningSignal:
    """A cluster's warning signal (``name``: ``USR2``, ...), noted when it arrives and handed on later to the
    handler it replaced. Armed only where a Python handler owns the signal (submitit's, in a job it runs)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.received = False
        self._replaced: tuple[signal.Signals, Callable[..., Any]] | None = None

    def arm(self) -> None:
        if self.name is None or threading.current_thread() is not threading.main_thread():
            return
        signum = signal.Signals[f"SIG{self.name}"]
        owner = signal.getsignal(signum)
        if not callable(owner) or self._replaced is not None:
            return  # no launcher requeues on it: the signal keeps its default action
        self._replaced, self.received = (signum, owner), False
        signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def received_anywhere(self, device: torch.device) -> bool:
        """Whether any process got the signal (one all-reduce per step in an armed multi-process job)."""
        if self._replaced is None:
            return False
        (anywhere,), _ = on_any_process([self.received], device)
        return anywhere

    def disarm(self) -> None:
        if self._replaced is not None:
            signal.signal(*self._replaced)
            self._replaced = None

    def hand_on(self) -> None:
        """Give the signal to the handler it replaced (submitit: rank 0 requeues the job and exits); the
        other processes of the job exit too, their part of the resume point written."""
        replaced = self._replaced
        self.disarm()
        self.received = False
        if replaced is None:
            return
        signum, owner = replaced
        owner(signum, None)
        if is_rank_zero():
            return  # the owner chose not to stop (not submitit's requeue): training goes on
        raise SystemExit(-1)  # as submitit's rank 0 does; SLURM requeues the whole job


class TrainThroughput(L.Callback):
    """Logs training throughput per epoch, timed from each batch's start to its end (the optimiser step
    included, data loading and validation not): ``train/tokens_per_s`` for per-position labels
    (language models; the positions each step scored, ignored ones not counted: ``scored`` in the
    step's outputs), ``train/samples_per_s`` otherwise. With several
    processes, the count of every process (they step together): the job's throughput."""

    def __init__(self) -> None:
        self._seconds, self._count, self._per_position, self._start = 0.0, 0, False, 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._seconds, self._count = 0.0, 0  # (a mid-epoch resume starts without this call)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        self._seconds += time.perf_counter() - self._start
        self._per_position = batch["labels"].dim() > 1
        self._count += int(outputs["scored"])  # what the step scored (on-policy: the student's sampled tokens)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._seconds > 0:
            name = "train/tokens_per_s" if self._per_position else "train/samples_per_s"
            pl_module.log(name, self._count * trainer.world_size / self._seconds, batch_size=1)
