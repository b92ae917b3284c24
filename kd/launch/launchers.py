"""What the Hydra launcher and sweeper running a job can do, and how parallel jobs share the cores.

Launchers and sweepers are Hydra plugins chosen by a config in the ``conf/sweep`` group. kd asks them
only what differs from Hydra's basic launcher and sweeper, and each difference is one entry below,
keyed by the plugin's class (its ``_target_``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

from kd.errors import ConfigError


@dataclass(frozen=True)
class LauncherCapabilities:
    """What a launcher's jobs can do; the defaults are those of Hydra's basic launcher and of submitit."""

    starts_processes: bool = True  # a job can start its own training processes (trainer=ddp)


@dataclass(frozen=True)
class SweeperCapabilities:
    """What a sweeper accepts from a failed job, and whether its jobs are known before the first starts."""

    stops_at_nan: bool = False  # a NaN objective ends the search: a failed job returns its direction's worst value
    lists_jobs: bool = False  # its jobs are every combination of listed values (Hydra's basic sweeper's syntax)


LAUNCHERS: dict[str, LauncherCapabilities] = {
    # joblib runs each job in a worker process of a pool, which cannot start training processes of its own
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": LauncherCapabilities(starts_processes=False),
}
SWEEPERS: dict[str, SweeperCapabilities] = {
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper": SweeperCapabilities(lists_jobs=True),
    "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper": SweeperCapabilities(stops_at_nan=True),
}


def _hydra_node(name: str) -> Any:
    """The running job's ``hydra.<name>`` config (``launcher``, ``sweeper``), or {} outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return cast(Any, HydraConfig.get()).get(name) or {}


def launcher() -> tuple[str, LauncherCapabilities]:
    """The running job's launcher (its ``_target_``; "" outside Hydra) and what it can do."""
    target = str(_hydra_node("launcher").get("_target_", "") or "")
    return target, LAUNCHERS.get(target, LauncherCapabilities())


def check_launcher_starts(processes: int, devices: Any) -> None:
    """Refuse a job of several training processes under a launcher whose jobs cannot start them."""
    target, can = launcher()
    if processes > 1 and not can.starts_processes:
        raise ConfigError(
            f"trainer.devices={devices} under the launcher {target.rsplit('.', 1)[-1]}: its jobs cannot start the "
            "other training processes. Run parallel sweep jobs with one process each (+sweep=joblib), or "
            "multi-process jobs one after another or on SLURM (+sweep=submitit_slurm)."
        )


def failed_job_value() -> float:
    """What a failed multirun job returns to the sweeper: NaN, or where a NaN would end the search (Optuna)
    the worst value for the sweeper's direction, so the study records the trial and goes on."""
    sweeper = _hydra_node("sweeper")
    if not SWEEPERS.get(str(sweeper.get("_target_", "")), SweeperCapabilities()).stops_at_nan:
        return float("nan")
    direction = str(sweeper.get("direction", "minimize")).lower()
    return float("-inf") if "max" in direction else float("inf")


def lists_jobs(sweeper: Any) -> bool:
    """Whether the sweeper config ``sweeper`` (``hydra.sweeper``) lists its jobs ahead (every combination)."""
    return SWEEPERS.get(str(sweeper.get("_target_", "")), SweeperCapabilities()).lists_jobs


def threads_per_job(jobs: int | str) -> int:
    """``${threads_per_job:${hydra:launcher.n_jobs}}``: this machine's usable cores shared among ``jobs``
    parallel jobs (at least 1; ``jobs <= 0``, joblib's "every core", gives 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(jobs)) if int(jobs) > 0 else 1
