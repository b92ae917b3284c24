"""Whether the cores a job may use are already busy: a warning before an oversubscribed run."""

from __future__ import annotations

import os
import time
from pathlib import Path

MEASURED = "measurements: docs/speed.md#cores"


def cores_per_process(processes: int) -> int:
    """The cores one of ``processes`` training processes on this machine may use: SLURM's
    ``SLURM_CPUS_PER_TASK`` for a task that ``srun`` started (each task has its own CPUs), else this
    process's allowed cores shared among the processes (Lightning starts them all from this one)."""
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit() and int(per_task) > 0 and "SLURM_PROCID" in os.environ:
        return int(per_task)
    return max(1, allowed_cores() // processes)


def cpu_times(cpus: list[int], stat: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]]:
    """``{cpu: (busy, total)}`` jiffies of ``cpus`` from /proc/stat (``{}`` where it cannot be read)."""
    times: dict[int, tuple[int, int]] = {}
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return times
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            total = sum(values)
            times[int(name[3:])] = (total - values[3] - values[4], total)
    return times


class CoreLoad:
    """The load other processes put on this process's allowed cores, from now until :meth:`others`.

    It is the cores' busy share over that window (``/proc/stat``) less this process's own CPU time
    over it, so the job can go on working meanwhile (kd measures while its data loads and its
    start-up checks run) instead of waiting idle. Children of this process would count as others;
    a job has none before training (kd's loaders use no worker processes).
    """

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self.stat = stat
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.before = cpu_times(self.cpus, stat)
        self.own, self.started = time.process_time(), time.monotonic()

    def others(self, at_least: float = 0.2) -> float | None:
        """Busy cores less this process's share, over at least ``at_least`` seconds (None: no ``/proc``)."""
        if not self.before:
            return None
        time.sleep(max(0.0, at_least - (time.monotonic() - self.started)))
        after = cpu_times(self.cpus, self.stat)
        busy = 0.0
        for cpu, (busy0, total0) in self.before.items():
            busy1, total1 = after.get(cpu, (busy0, total0))
            busy += (busy1 - busy0) / max(total1 - total0, 1)
        own = (time.process_time() - self.own) / max(time.monotonic() - self.started, 1e-9)
        return max(0.0, busy - own)


def allowed_cores() -> int:
    """How many cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def oversubscription_warning(threads: int, cores: int, busy: float | None) -> str | None:
    """A warning naming ``threads=`` when ``threads`` exceed the cores other processes leave free."""
    if busy is None:
        return None
    free = cores - busy
    if threads <= free + 0.5:
        return None
    advice = f"Set threads={round(free)}" if round(free) >= 1 else "No core is free: run the jobs one after another"
    return (
        f"[kd] warning: {busy:.1f} of the {cores} cores this job may use are busy with other processes, and "
        f"it runs threads={threads}. Oversubscribed torch threads run many times slower ({MEASURED}). "
        f"{advice}; parallel sweeps: +sweep=joblib shares the cores among its jobs."
    )
