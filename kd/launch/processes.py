"""The processes of one job (multi-process training): which one this is, and waiting for rank zero.

A multi-process job (``trainer=ddp``) runs kd's start-up in every process: Lightning's launcher
starts ranks 1.. by re-running the command once rank zero starts training, and SLURM's ``srun``
starts every rank at once. Rank zero alone trains a missing teacher, builds the teacher-output cache
and writes the job's files; the other ranks wait for what it builds and then read it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from kd.errors import ConfigError
from kd.launch.hardware import job_hardware

T = TypeVar("T")
# The trainer settings of a stage that runs in rank 0's process alone (the teacher stage); the
# environment plugin keeps the task count of SLURM's srun out.
SINGLE_PROCESS = {
    "strategy": "auto",
    "devices": 1,
    "num_nodes": 1,
    "plugins": [{"_target_": "lightning.fabric.plugins.environments.LightningEnvironment"}],
}
# Where launchers put a process's global rank, in the order Lightning reads them.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
# Command-line flags of a Hydra app that take a value and must reach the other ranks too.
_HYDRA_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def processes_per_machine(cfg: Any) -> int:
    """Training processes on each machine, counted as Lightning's accelerator counts ``trainer.devices``: a
    count, a list or a string of GPU ids; ``auto`` (and ``-1`` on GPUs) is every visible GPU, 1 on a CPU."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator
    from omegaconf import OmegaConf

    devices: Any = cfg.trainer.get("devices", 1)
    devices = OmegaConf.to_container(devices) if OmegaConf.is_list(devices) else devices
    on_gpu = job_hardware(cfg).device == "cuda"
    accelerator = CUDAAccelerator if on_gpu else CPUAccelerator
    if devices == "auto":
        return int(accelerator.auto_device_count())
    try:
        parsed = accelerator.parse_devices(devices)
    except (TypeError, ValueError, MisconfigurationException) as error:
        where = "GPU ids or a count of GPUs" if on_gpu else "a count of processes >= 1 (-1 means every GPU, and this job runs on the CPU)"
        raise ConfigError(f"trainer.devices={devices!r}: give {where}, or auto ({error})") from None
    return len(parsed) if isinstance(parsed, list) else int(parsed or 1)


def process_count(cfg: Any) -> int:
    """Training processes of the job: processes per machine times ``trainer.num_nodes``."""
    return processes_per_machine(cfg) * int(cfg.trainer.get("num_nodes", 1) or 1)


def slurm_restarts() -> int:
    """How often SLURM restarted this job (requeued after a time limit or preemption): ``SLURM_RESTART_COUNT``."""
    count = os.environ.get("SLURM_RESTART_COUNT", "0")
    return int(count) if count.isdigit() else 0


def run_stamp(time_format: str) -> str:
    """``${run_stamp:%Y-%m-%d/%H-%M-%S-%f}`` (``hydra.run.dir``): the time now, formatted; in a task that
    ``srun`` started with others (one job step of several tasks, each running the command),
    ``slurm-<job id>/<step id>``, the same in every task, so the ranks share one run folder; a requeued job
    (``SLURM_RESTART_COUNT``) gets ``.restart<n>`` after it, a new folder (``resume=true`` finds the old one)."""
    job, step, tasks = (os.environ.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS"))
    if job and step and tasks.isdigit() and int(tasks) > 1 and "SLURM_PROCID" in os.environ:
        restarts = slurm_restarts()
        return f"slurm-{job}/{step}" + (f".restart{restarts}" if restarts else "")
    return datetime.now().strftime(time_format)


def global_rank() -> int:
    """This process's rank in the job (0 when launched alone)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return rank_from_environment()


def rank_from_environment() -> int:
    """The rank a launcher gave this process in its environment (0 when launched alone); torch is not
    imported, so the start-up can ask before it imports torch."""
    for name in _RANK_VARIABLES:
        if (value := os.environ.get(name)) is not None:
            return int(value)
    return 0


def leave_process_group() -> None:
    """Destroy torch.distributed's default group, if this process joined one, while Python still runs.

    Lightning destroys NCCL groups at exit, not gloo's (CPU): a gloo group left to the interpreter's
    shutdown can abort the process ("terminate called without an active exception", SIGABRT) after the
    job finished, and Lightning's launcher then kills every rank. Destroying is local to the process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_rank_zero() -> bool:
    """True in the process that writes the job's files (the only one of a single-process job)."""
    return global_rank() == 0


def wait_for_rank_zero(ready: Callable[[], T | None], what: str, failed: Path, poll_s: float = 2.0) -> T:
    """Call ``ready`` until it returns something (rank zero has built ``what``); say so once a minute.

    Raises RuntimeError when rank zero records a failure (``failed``, its ``failed.json``) meanwhile.
    """
    start, said, since = time.monotonic(), -60.0, time.time()
    while (found := ready()) is None:
        if failed.is_file() and failed.stat().st_mtime >= since:
            raise RuntimeError(f"rank 0 failed while building {what}; see {failed}")
        waited = time.monotonic() - start
        if waited - said >= 60:
            print(f"[kd] rank {global_rank()}: waiting for rank 0 to build {what} ({waited:.0f} s)", flush=True)
            said = waited
        time.sleep(poll_s)
    return found


def built_by_rank_zero(read_or_build: Callable[[bool], T | None], what: str, failed: Path) -> T:
    """What ``read_or_build(True)`` reads or builds on rank zero (the only rank of a single process);
    the other ranks call ``read_or_build(False)`` (read only) until it returns something
    (:func:`wait_for_rank_zero`)."""
    if is_rank_zero():
        found = read_or_build(True)
        assert found is not None  # building always returns what it built
        return found
    return wait_for_rank_zero(lambda: read_or_build(False), what, failed)


def _hydra_flags(argv: list[str]) -> list[str]:
    kept, args = [], iter(argv)
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in _HYDRA_FLAGS:
            kept += [arg] if "=" in arg else [arg, next(args, "")]
    return kept


def pin_worker_command() -> None:
    """Make the command Lightning's launcher re-runs for ranks 1.. this job alone.

    Lightning starts the other ranks with ``sys.argv`` plus ``hydra.run.dir=<hydra.run.dir>``. In a
    multirun job that would be the whole sweep again, in another folder; so ``sys.argv`` becomes
    this job's overrides in run mode and ``hydra.run.dir`` this job's folder. No-op without Hydra.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, open_dict, read_write

    if not HydraConfig.initialized():
        return
    hydra_cfg = cast(DictConfig, HydraConfig.get())  # typed as the HydraConf dataclass; a DictConfig at run time
    sys.argv = [sys.argv[0], *_hydra_flags(sys.argv[1:]), *hydra_cfg.overrides.task, "hydra.mode=RUN"]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


SHARDED_NOT_MEASURED = (
    "trainer=fsdp: the student's size, latency and generations are not measured after a sharded fit (rank 0 "
    "alone would wait for the other processes' shards); measure them from the run's checkpoint with "
    "python -m kd.export <run folder>"
)


def sharded(trainer: Any) -> bool:
    """Whether the trainer's strategy splits the models among its processes (FSDP): then no process holds
    whole models after ``fit``, and a forward pass on one process alone waits for the others forever."""
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    return isinstance(trainer.strategy, FSDPStrategy | ModelParallelStrategy)
