"""OmegaConf resolvers used by the configs."""

import os
from typing import Any

from omegaconf import OmegaConf

from kd.task import task_for
from kd.utils.precision import bf16_if_native


def one_minus(value: float | str) -> float:
    """``${one_minus:${loss.alpha}}`` -> ``1 - alpha`` (the hard-label share of a KD loss)."""
    return 1.0 - float(value)


def threads_per_job(jobs: int | str) -> int:
    """``${threads_per_job:${hydra:launcher.n_jobs}}``: this machine's usable cores shared among ``jobs``
    parallel jobs (at least 1; ``jobs <= 0``, joblib's "every core", gives 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(jobs)) if int(jobs) > 0 else 1


def task_field(field: str, *, _root_: Any) -> Any:
    """``${task:monitor}``, ``${task:mode}``: a field of the run's task (``kd.task``, from ``data.modality``)."""
    return getattr(task_for(_root_.data.get("modality")), field)


def register_resolvers() -> None:
    """Register kd's resolvers (idempotent)."""
    OmegaConf.register_new_resolver("one_minus", one_minus, replace=True)
    OmegaConf.register_new_resolver("threads_per_job", threads_per_job, replace=True)
    OmegaConf.register_new_resolver("task", task_field, replace=True)
    OmegaConf.register_new_resolver("bf16_if_native", bf16_if_native, replace=True)
