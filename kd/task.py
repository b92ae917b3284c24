"""What kind of prediction a run makes, decided once from ``data.modality``: the one place that knows.

A :class:`Task` says which metrics a run logs, which validation metric picks the best checkpoint (and
which way is better), what ``kd.report`` shows and plots, and how ``kd.export`` quantises the student.
Everything else asks the task (``task_for``, ``task_of_config``, ``task_of_record``) instead of
guessing from metric names or model inputs. A run writes its task's name into ``metrics.json``.

Adding a modality: a data module, a model factory, and one entry in ``TASKS`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kd.errors import ConfigError

# Metric names (their last part, less ``teacher_``, or any part for losses) where a smaller value is
# better; all others (accuracies, agreement, tokens per second) are better larger.
LOWER_IS_BETTER = {"ppl", "ppl_best", "bpb", "kl", "kl_topk", "ece", "loss", "latency_ms", "ms_per_token"}


def lower_is_better(metric: str) -> bool:
    """Whether ``metric`` is minimised (perplexity, bits per byte, KL, ECE, losses, latency)."""
    parts = metric.split("/")
    return parts[-1].removeprefix("teacher_") in LOWER_IS_BETTER or "loss" in parts


@dataclass(frozen=True)
class Task:
    """What one kind of run predicts and is judged by."""

    name: str  # "classification" (a label per sample) or "lm" (the next token at every position)
    monitor: str  # validation metric whose best checkpoint is tested
    summary: tuple[str, ...]  # the columns of kd.run's end-of-run table
    columns: tuple[str, ...]  # kd.report's columns
    headline: str  # the metric plotted and used to pick the best configuration
    teacher_metric: str  # the teacher's own value of ``headline``
    latency: str  # suffix of ``student/...`` and ``teacher/...`` for the cost plot
    latency_label: str
    label: str  # axis label of ``headline``
    scale: float  # 100 for accuracies shown in %
    plot_prefix: str
    quantization: str  # kd.export's INT8 method under ``--quantize auto``: static (calibrated) or dynamic
    model_kind: str  # what trainer.precision: auto decides by (kd.utils.precision): image, text or language model
    answer_columns: tuple[str, ...] = ()  # scores of answers to held-out prompts, where the data has prompts

    @property
    def language_model(self) -> bool:
        """Whether the run predicts next tokens (perplexity, generations, top-k teacher caches)."""
        return self.name == "lm"

    @property
    def mode(self) -> str:
        """``min`` or ``max``: which way ``monitor`` is better (``lower_is_better``)."""
        return "min" if lower_is_better(self.monitor) else "max"

    @property
    def best_metric(self) -> str:
        """The logged best value of ``monitor`` (``val/acc_best``, ``val/ppl_best``)."""
        return f"{self.monitor}_best"


_CLASSIFICATION: dict[str, Any] = dict(
    name="classification", monitor="val/acc", summary=("val/acc_best", "test/acc"),
    columns=("test/acc", "val/acc_best", "test/agreement", "test/kl", "test/ece", "student/latency_ms"),
    headline="test/acc", teacher_metric="test/teacher_acc", latency="latency_ms",
    latency_label="CPU latency per batch (ms)", label="test accuracy (%)", scale=100.0, plot_prefix="report_",
)
TASKS: dict[str, Task] = {  # by data.modality
    "image": Task(**_CLASSIFICATION, quantization="static", model_kind="image"),
    "text": Task(**_CLASSIFICATION, quantization="dynamic", model_kind="text"),
    "lm": Task(
        name="lm", monitor="val/ppl", summary=("val/ppl_best", "test/ppl", "test/bpb", "test/acc"),
        columns=("test/ppl", "val/ppl_best", "test/bpb", "test/acc", "test/agreement", "test/kl", "test/kl_topk",
                 "test/rougeL_teacher", "test/rougeL_ref", "test/exact_match", "student/ms_per_token"),
        answer_columns=("test/rougeL_teacher", "test/rougeL_ref", "test/exact_match", "test/answer_tokens"),
        headline="test/ppl", teacher_metric="test/teacher_ppl", latency="ms_per_token",
        latency_label="generation latency per token (ms)", label="test perplexity", scale=1.0,
        plot_prefix="report_lm_", quantization="dynamic", model_kind="language model",
    ),
}
MODALITIES = tuple(TASKS)
TASKS_BY_NAME: dict[str, Task] = {"classification": TASKS["image"], "lm": TASKS["lm"]}  # for kd.report


def task_for(modality: Any, key: str = "data.modality") -> Task:
    """The task of data of ``modality`` (``image``, ``text`` or ``lm``); a ConfigError names ``key``."""
    if modality not in TASKS:
        raise ConfigError(f"{key}={modality!r}: declare one of {list(MODALITIES)}")
    return TASKS[modality]


def task_of_config(cfg: Any) -> Task:
    """The task of a run's config (its ``data.modality``)."""
    return task_for(cfg.data.get("modality"))


def task_of_record(config: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> Task:
    """The task of a finished run folder: its config's ``data.modality``, else ``metrics.json``'s
    ``task``; records from before either was written are language models when they hold a perplexity,
    image classification otherwise."""
    metrics = metrics or {}
    data = (config or {}).get("data")
    if isinstance(data, Mapping) and data.get("modality") in TASKS:
        return TASKS[data["modality"]]
    if metrics.get("task") in TASKS_BY_NAME:
        return TASKS_BY_NAME[metrics["task"]]
    return TASKS["lm"] if "test/ppl" in metrics else TASKS["image"]
