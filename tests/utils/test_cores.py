"""The oversubscription warning: busy cores from /proc/stat deltas, and when it speaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kd.utils import cores


def stat_file(path: Path, per_cpu: dict[int, tuple[int, int]]) -> Path:
    """A /proc/stat with ``(busy, idle)`` jiffies per cpu (busy as user time)."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{c} {busy} 0 0 {idle} 0 0 0 0 0 0" for c, (busy, idle) in per_cpu.items()]
    path.write_text("\n".join(lines) + "\nintr 1 2 3\n")
    return path


def test_the_load_of_other_processes_is_the_busy_share_less_this_process_s_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cores.CoreLoad(tmp_path / "missing").others() is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    clock, cpu = iter([10.0, 10.5, 10.5]), iter([3.0, 3.25])  # a 0.5 s window, 0.25 s of it on our CPU time
    monkeypatch.setattr(cores.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(cores.time, "process_time", lambda: next(cpu))
    slept: list[float] = []
    monkeypatch.setattr(cores.time, "sleep", slept.append)
    stat = stat_file(tmp_path / "stat", {0: (100, 100), 1: (50, 200), 7: (0, 0)})
    load = cores.CoreLoad(stat)
    stat_file(stat, {0: (190, 110), 1: (75, 275), 7: (100, 0)})
    # cpu0: 90 of 100 jiffies busy, cpu1: 25 of 100 (cpu7 is not ours); this process: 0.25 / 0.5 s
    assert load.others() == pytest.approx(0.9 + 0.25 - 0.5)
    assert slept == [0.0]  # the window was already longer than the 0.2 s it needs


def test_a_short_window_waits_for_its_minimum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    clock = iter([5.0, 5.05, 5.2])
    monkeypatch.setattr(cores.time, "monotonic", lambda: next(clock))
    slept: list[float] = []
    monkeypatch.setattr(cores.time, "sleep", slept.append)
    load = cores.CoreLoad(stat_file(tmp_path / "stat", {0: (0, 100)}))
    assert load.others() is not None and slept == [pytest.approx(0.15)]


@pytest.mark.parametrize(("threads", "busy", "warns"), [(2, 0.1, False), (1, 1.0, False), (2, 1.0, True), (2, 1.8, True)])
def test_warns_only_when_threads_exceed_the_free_cores(threads: int, busy: float, warns: bool) -> None:
    message = cores.oversubscription_warning(threads, 2, busy)
    assert (message is not None) == warns
    if warns:
        assert f"runs threads={threads}" in message and "docs/speed.md#cores" in message
        assert ("Set threads=1" in message) == (busy < 1.5) and ("No core is free" in message) == (busy >= 1.5)
    assert cores.oversubscription_warning(threads, 2, None) is None  # no /proc/stat: say nothing


def test_parallel_jobs_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from kd.launch.launchers import threads_per_job

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert [threads_per_job(n) for n in (1, 2, 3, 8, 16, "4")] == [8, 4, 2, 1, 1, 2]
    assert threads_per_job(-1) == 1  # joblib's "as many jobs as cores"
