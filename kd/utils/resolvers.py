"""OmegaConf resolvers used by the configs."""

from typing import Any

from omegaconf import OmegaConf

from kd.launch.launchers import threads_per_job
from kd.launch.processes import run_stamp
from kd.task import task_for


def one_minus(value: float | str) -> float:
    """``${one_minus:${loss.alpha}}`` -> ``1 - alpha`` (the hard-label share of a KD loss)."""
    return 1.0 - float(value)


def task_field(field: str, *, _root_: Any) -> Any:
    """``${task:monitor}``, ``${task:mode}``: a field of the run's task (``kd.task``, from ``data.modality``)."""
    return getattr(task_for(_root_.data.get("modality")), field)


def register_resolvers() -> None:
    """Register kd's resolvers (idempotent)."""
    OmegaConf.register_new_resolver("one_minus", one_minus, replace=True)
    OmegaConf.register_new_resolver("threads_per_job", threads_per_job, replace=True)
    OmegaConf.register_new_resolver("task", task_field, replace=True)
    OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True)
