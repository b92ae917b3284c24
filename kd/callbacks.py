"""Small callbacks: one line of metrics per epoch for runs without a progress bar."""

from __future__ import annotations

import time

import lightning.pytorch as L

SHOWN = ("train/acc", "val/acc", "val/acc_best", "val/agreement")


class EpochSummary(L.Callback):
    """Prints ``epoch k/n  train/acc …  val/acc …  (s)`` at the end of each training epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = "  ".join(f"{k} {float(metrics[k]):.4f}" for k in SHOWN if k in metrics)
        seconds = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  ({seconds:.0f} s)", flush=True)
