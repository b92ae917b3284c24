"""The LightningModule that trains a student, optionally against a frozen teacher."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities.types import OptimizerConfig, OptimizerLRSchedulerConfig
from torch import nn
from torchmetrics import MaxMetric, MinMetric

from kd.errors import ConfigError
from kd.finite import check_finite_loss, check_finite_weights
from kd.losses.weighted_sum import WeightedSum
from kd.metrics import stage_metrics, train_accuracy
from kd.model_outputs import ModelOutputs, TeacherOutputs
from kd.taps import FeatureTaps, Inputs, to_channels_last
from kd.task import TASKS, Task
from kd.teacher_source import CacheEntry, TeacherSource

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")  # the teacher, on purpose


class DistillModule(L.LightningModule):
    """Trains ``student`` on ``loss``; the teacher, when given, is frozen and always in eval mode.

    Batches are dicts with ``inputs`` (a tensor or a dict of tensors) and ``labels``. The teacher's
    weights are left out of checkpoints (restored from its own file).

    Args:
        student: the network being trained.
        loss: the weighted sum of loss terms.
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        example_inputs: a small batch; a dry run sizes lazy loss connectors, keeps only the taps the loss reads.
        num_classes: number of classes (the vocabulary size for language models), for the metrics.
        scheduler: ``(optimizer, total_steps=...) -> LRScheduler``, stepped every batch, or None.
        teacher: the frozen teacher, or None for training without one.
        student_layers, teacher_layers: tap alias -> module path on the student / the teacher.
        channels_last: use the channels-last memory layout for 4-D inputs and both networks.
        teacher_outputs: cached teacher outputs by entry (``kd.teacher_source``), read by batch ``index``
            instead of a forward; the live teacher answers for the rest.
        task: what the run predicts (``kd.task``): its metrics and the validation metric whose best is
            tracked (``val/acc`` for a label per sample, ``val/ppl`` for next-token labels per position).
        on_policy: ``(batch, student) -> batch`` for training batches (``kd.lm.on_policy``), or None.
    """

    def __init__(
        self,
        student: nn.Module,
        loss: WeightedSum,
        optimizer: OptimizerFactory,
        example_inputs: Inputs,
        num_classes: int,
        scheduler: SchedulerFactory | None = None,
        teacher: nn.Module | None = None,
        student_layers: Mapping[str, str] | None = None,
        teacher_layers: Mapping[str, str] | None = None,
        channels_last: bool = False,
        teacher_outputs: Mapping[CacheEntry, TeacherOutputs] | None = None,
        task: Task = TASKS["image"],
        on_policy: Callable[[dict[str, Any], nn.Module], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if loss.needs_teacher and teacher is None:
            raise ValueError(f"loss terms {loss.active} need a teacher, but none was given")
        self.student, self.teacher, self.loss = student, teacher, loss
        student.train()  # from_pretrained() hands models over in eval mode (dropout off)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.channels_last, self.on_policy = channels_last, on_policy
        for net in [n for n in (student, teacher) if n is not None and channels_last]:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits memory_format
        if teacher is not None:
            teacher.requires_grad_(False).eval()
            loss.bind_teacher(teacher)
        self.student_taps = FeatureTaps(student, student_layers)
        self.teacher_taps = FeatureTaps(teacher, teacher_layers) if teacher is not None else None
        self.teacher_source = TeacherSource(teacher_outputs, self.teacher_taps)
        self._dry_run(example_inputs)
        self.task = task
        self.train_acc, self.val_best = train_accuracy(task, num_classes), MinMetric() if task.mode == "min" else MaxMetric()
        self.train_acc.persistent(True)  # checkpointed: a resume keeps counts and best
        self.val_best.persistent(True)
        self.val_metrics, self.test_metrics = stage_metrics(task, num_classes), stage_metrics(task, num_classes)

    def _dry_run(self, inputs: Inputs) -> None:  # sizes lazy connectors; catches missing taps early
        was_training = self.student.training
        self.student.eval()
        with torch.no_grad():
            student_out, teacher_out = self._forward(inputs)
            train = self.teacher_source.entry("train")
            if train is not None:  # what training steps will see: the cached outputs
                rows, view = train.example_rows(student_out.logits.shape[0])
                cached = train.lookup(rows, student_out.mask, view_seed=view)
                logits = cached.logits[:, : student_out.logits.shape[1]]  # language models: the example's length
                teacher_out = ModelOutputs(logits=logits, features=cached.features, mask=student_out.mask)
            labels = torch.zeros(student_out.logits.shape[:-1], dtype=torch.long)
            try:
                self.loss(student_out, teacher_out, labels)
            except ConfigError as err:
                if train is None:
                    raise
                raise ConfigError(f"{err} Cached teacher outputs hold only teacher_outputs.features={sorted(train.features)}.") from None
        for taps, out in ((self.student_taps, student_out), (self.teacher_taps, teacher_out)):
            if taps is not None and out is not None:
                taps.keep(out.read)
        self.student.train(was_training)

    def setup(self, stage: str) -> None:
        # Trainer.datamodule is set by Lightning's data connector but not declared on Trainer
        datamodule = self.trainer.datamodule if self._trainer is not None else None  # type: ignore[attr-defined]
        if train_size := getattr(datamodule, "train_size", None):
            self.loss.bind_train_size(train_size)

    def train(self, mode: bool = True) -> DistillModule:
        """Switch the student (and loss connectors) to ``mode``; the teacher stays in eval."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def on_train_epoch_start(self) -> None:
        for key, value in self.loss.set_epoch(self.current_epoch).items():
            self.log(f"train/schedule/{key}", value, batch_size=1)

    def _forward(self, inputs: Inputs, index: torch.Tensor | None = None, split: str | None = None,
                 view: torch.Tensor | None = None) -> tuple[ModelOutputs, ModelOutputs | None]:
        """Student outputs, and the teacher's (``kd.teacher_source``: cached for ``split`` in this epoch, else live)."""
        inputs = self.prepare_inputs(inputs)
        student_out = self.student_taps(inputs, index)
        return student_out, self.teacher_source.outputs(inputs, student_out, index, split, self.current_epoch, view)

    def prepare_inputs(self, inputs: Inputs) -> Inputs:
        """Inputs in the memory layout both networks use."""
        return to_channels_last(inputs) if self.channels_last else inputs

    def forward(self, inputs: Inputs) -> torch.Tensor:
        """Student logits (what a deployed student computes)."""
        return self.student_taps(self.prepare_inputs(inputs)).logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """One step; returns the loss and ``scored``, the samples or label positions it scored."""
        if self.on_policy is not None:
            batch = self.on_policy(batch, self.student)
        sampled = bool(batch.get("sampled", False))  # the student's own tokens: only teacher terms score them
        student_out, teacher_out = self._forward(batch["inputs"], batch.get("index"), "train", batch.get("view_seed"))
        labels = batch["labels"]
        total, parts = self.loss(student_out, teacher_out, labels, teacher_terms_only=sampled)
        check_finite_loss(total, parts, self.current_epoch, self.global_step)
        if not sampled:  # accuracy on the corpus, not on what the student wrote itself
            self.train_acc.update(student_out.logits.detach(), labels)
        # Only on steps the logger writes (trainer.log_every_n_steps): each self.log costs ~0.6 ms here.
        # Trainer.log_every_n_steps is set by Lightning's logger connector but not declared on Trainer
        every = self.trainer.log_every_n_steps if self._trainer is not None else 0  # type: ignore[attr-defined]
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss", total, prog_bar=True)
            for name, value in parts.items():
                self.log(f"train/loss/{name}", value)
        scored = int((labels != -100).sum()) if labels.dim() > 1 else len(labels)
        return {"loss": total, "scored": scored}

    def on_train_epoch_end(self) -> None:
        if self.train_acc.update_called:  # (fully on-policy epochs score no corpus batch)
            self.log("train/acc", self.train_acc.compute(), batch_size=1)  # one value an epoch
        self.train_acc.reset()

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        student_out, teacher_out = self._forward(batch["inputs"], batch.get("index"), stage)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(student_out.logits, batch["labels"], teacher_out)
        for name, metric in metrics.loggable(stage, teacher_out).items():
            self.log(name, metric, prog_bar=name == f"{stage}/acc")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_best(getattr(self.val_metrics, self.task.monitor.removeprefix("val/")).compute())
            self.log(self.task.best_metric, self.val_best.compute(), prog_bar=True, batch_size=1)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> OptimizerConfig | OptimizerLRSchedulerConfig:
        params = [p for p in (*self.student.parameters(), *self.loss.parameters()) if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for part in (self.student, self.loss):  # never save non-finite weights over a good checkpoint
            check_finite_weights(part, f"checkpoint at step {self.global_step}")
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("teacher.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("val_acc_best.")]:  # the name before language models
            state[key.replace("val_acc_best.", "val_best.", 1)] = state.pop(key)
        if self.teacher is not None:
            state.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
