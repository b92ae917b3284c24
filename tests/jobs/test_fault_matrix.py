"""The fault matrix (docs/running.md#faults): a kill, a full disk or a corrupted file at each stage, then
the same command again (``resume=true`` for ``kd.run``). Every case must end with the metrics of an
uninterrupted run, no temporary file left anywhere, and ``kd.report`` counting one finished run and no
failure.

Kills are real SIGKILLs of a ``python -m kd.run`` (``kd.export``, ``kd.report``) process
(``tests/faults.py``), at the worst moment of each stage; the reruns and the uninterrupted runs they are
compared with run in this process: a file written whole to its temporary name, not yet renamed; or a training step as it
begins. Full disks fail a write half-way with ENOSPC, in-process. The job trains the teacher, caches
its outputs on val, test and every epoch's augmented training views, and checkpoints mid-epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import open_dict

from kd.export.__main__ import main as export_main
from kd.report.__main__ import main as report_main
from kd.report.runs import find_runs
from tests.cli import THREADS, run_cli
from tests.faults import install
from tests.paths import REPO

JOB = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}",
       "progress_bar=false", "loss=kd", "data.module.augment=true", "data.module.source.train_size=256",
       "trainer.max_epochs=2", "trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0",
       "trainer.limit_test_batches=1.0", "checkpoint_every_n_steps=3"]  # 4 steps an epoch
NOT_COMPARED = ("time/", "student/latency_ms", "teacher/latency_ms", "best_checkpoint", "resumed_from",
                "train/samples_per_s", "teacher_ckpt")


def compared(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.startswith(NOT_COMPARED)}


def kd_process(root: Path, name: str, *extra: str, fault: dict[str, Any] | None = None,
               module: str = "kd.run") -> subprocess.CompletedProcess:
    """``python -m <module>`` with the job's overrides into ``root``, under ``fault`` (tests/faults.py)."""
    flags = [a for a in extra if a == "-m"]  # multirun: Hydra takes the flag before the overrides
    extra = tuple(a for a in extra if a != "-m")
    args = [*flags, *JOB, f"paths.log_dir={root}", f"hydra.run.dir={root}/runs/{name}", *extra] if module == "kd.run" else list(extra)
    command = [sys.executable, "-m", "tests.faults", json.dumps(fault or {}), module, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def rerun(root: Path, name: str, *extra: str) -> tuple[int, str]:
    """The same job again, in this process (the kills need a process of their own; the reruns do not)."""
    flags = [a for a in extra if a == "-m"]
    extra = tuple(a for a in extra if a != "-m")
    return run_cli(*flags, *JOB, f"paths.log_dir={root}", f"hydra.run.dir={root}/runs/{name}", *extra)


def finished_run(root: Path) -> dict[str, Any]:
    """The one run ``kd.report`` finds under ``root/runs``: finished, not failed; its metrics."""
    runs = find_runs([root / "runs"])
    assert [r.error for r in runs] == [None], [(r.path, r.error) for r in runs]
    assert runs[0].metrics is not None
    return runs[0].metrics


def no_temporaries(root: Path) -> None:
    assert sorted(root.rglob("*.tmp")) == []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uninterrupted")
    code, err = rerun(root, "run")
    assert code == 0, err[-3000:]
    metrics = finished_run(root)
    assert metrics["epochs"] == 2 and len(compared(metrics)) > 15
    return metrics


KILLS = {  # stage: where the SIGKILL lands
    "teacher stage": {"kill_write": "teacher.ckpt"},
    "cache build": {"kill_write": "val.pt"},
    "augmented views": {"kill_write": "train@1*.pt"},
    "job record": {"kill_write": "job.json"},
    "student training": {"kill_step": 6},
    "checkpoint write": {"kill_write": "resume.ckpt.*.tmp"},
    "results": {"kill_write": "metrics.json"},
}


@pytest.mark.parametrize("stage", list(KILLS))
def test_a_run_killed_at_each_stage_reruns_to_the_same_metrics(stage: str, tmp_path: Path, uninterrupted: dict) -> None:
    killed = kd_process(tmp_path, "killed", fault=KILLS[stage])
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    code, err = rerun(tmp_path, "again", "resume=true")
    assert code == 0, err[-3000:]
    assert compared(finished_run(tmp_path)) == compared(uninterrupted)
    no_temporaries(tmp_path)


FULL_DISK = {  # stage: the file whose write fills the disk
    "teacher stage": "teacher.ckpt",
    "cache entry": "test.pt",
    "cache record": "val.json",
    "augmented views": "train@0*.pt",
    "job record": "job.json",
    "checkpoint": "resume.ckpt.*.tmp",
    "results": "metrics.json",
}


@pytest.mark.parametrize("stage", list(FULL_DISK))
def test_a_full_disk_at_each_write_fails_cleanly_and_the_rerun_finishes(
    stage: str, tmp_path: Path, uninterrupted: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        install({"full_disk": FULL_DISK[stage]}, patched.setattr)
        code, err = rerun(tmp_path, "full")
    assert code == 3, err[-3000:]
    assert "no space left on the device" in err and "Traceback" not in err, err[-3000:]
    no_temporaries(tmp_path)
    code, err = rerun(tmp_path, "again", "resume=true")
    assert code == 0, err[-3000:]
    assert compared(finished_run(tmp_path)) == compared(uninterrupted)
    no_temporaries(tmp_path)


def garble(path: Path) -> None:
    """Overwrite the middle of ``path`` (a bad sector, a bit flip in transfer): same size, wrong bytes."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    data[:8] = b"garbage!"
    path.write_bytes(bytes(data))


CORRUPTIONS = {  # what is corrupted after a run was killed at step 6: where to find it
    "checkpoint": lambda root: [root / "runs/killed/checkpoints/resume.ckpt"],
    "job record": lambda root: [root / "runs/killed/job.json"],
    "cache entry": lambda root: sorted(root.glob("teacher_outputs/*/val.pt")),
}


@pytest.mark.parametrize("part", list(CORRUPTIONS))
def test_a_corrupted_file_is_never_used_and_the_rerun_gets_the_same_metrics(
    part: str, tmp_path: Path, uninterrupted: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    killed = kd_process(tmp_path, "killed", fault={"kill_step": 6})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    (target,) = CORRUPTIONS[part](tmp_path)
    garble(target)
    capsys.readouterr()
    code, err = rerun(tmp_path, "again", "resume=true")
    out = capsys.readouterr().out
    assert code == 0, err[-3000:]
    said = {"checkpoint": f"{target} cannot be read; trying an older checkpoint",
            "job record": f"{target} cannot be read (JSONDecodeError); that run is not resumed",
            "cache entry": "[kd] computing teacher outputs on the val split"}[part]
    assert said in out, out[-3000:]
    assert compared(finished_run(tmp_path)) == compared(uninterrupted)
    no_temporaries(tmp_path)


def test_a_sweep_killed_in_its_second_job_reruns_to_the_same_metrics(tmp_path: Path, uninterrupted: dict) -> None:
    sweep = ["-m", "loss.temperature=2,4", f"hydra.sweep.dir={tmp_path}/runs/sweep"]  # job 1 is the uninterrupted job
    killed = kd_process(tmp_path, "unused", *sweep, fault={"kill_step": 6, "job": 1})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    first = (tmp_path / "runs/sweep/0/metrics.json").read_bytes()
    code, err = rerun(tmp_path, "unused", *sweep[:2], f"hydra.sweep.dir={tmp_path}/runs/again", "resume=true")
    assert code == 0, err[-3000:]
    assert (tmp_path / "runs/sweep/0/metrics.json").read_bytes() == first  # the finished job was skipped
    runs = find_runs([tmp_path / "runs"])
    assert sorted(str(r.path.relative_to(tmp_path)) for r in runs) == ["runs/sweep/0", "runs/sweep/1"]
    assert all(r.error is None for r in runs)
    assert compared(json.loads((tmp_path / "runs/sweep/1/metrics.json").read_text())) == compared(uninterrupted)
    no_temporaries(tmp_path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, uninterrupted: dict) -> Path:
    """The uninterrupted run's folder (read only: tests copy it)."""
    return Path(uninterrupted["best_checkpoint"]).parents[1]


def test_an_export_killed_as_it_writes_deploy_json_reruns_to_the_same_figures(finished: Path, tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for copy in (whole, killed):
        shutil.copytree(finished, copy)
    export_main([str(whole), "--repeats", "1"])
    died = kd_process(tmp_path, "", str(killed), "--repeats", "1", module="kd.export", fault={"kill_write": "deploy.json"})
    assert died.returncode == -signal.SIGKILL and not (killed / "deploy.json").exists()
    export_main([str(killed), "--repeats", "1"])
    figures = [{name: {k: m[k] for k in ("test/acc", "size_mb")} for name, m in
                json.loads((run / "deploy.json").read_text())["models"].items()} for run in (whole, killed)]
    assert figures[0] == figures[1] and set(figures[0]) == {"student", "teacher", "student_int8"}
    no_temporaries(tmp_path)


def test_a_report_killed_as_it_writes_reruns_to_the_same_report(finished: Path, tmp_path: Path) -> None:
    runs = finished.parent
    report_main([str(runs), "--out", str(tmp_path / "whole")])
    out = str(tmp_path / "killed")
    died = kd_process(tmp_path, "", str(runs), "--out", out, module="kd.report", fault={"kill_write": "report.json"})
    assert died.returncode == -signal.SIGKILL and not (tmp_path / "killed/report.json").exists()
    report_main([str(runs), "--out", out])
    reports = [json.loads((tmp_path / name / "report.json").read_text()) for name in ("whole", "killed")]
    for report in reports:
        report.pop("plots")
    assert reports[0] == reports[1] and reports[0]["rows"] and not reports[0]["failed"]
    no_temporaries(tmp_path)


def test_a_full_disk_in_export_and_report_fails_cleanly_and_the_same_command_finishes(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run, ignore=shutil.ignore_patterns("deploy*"))
    for command, written in ((lambda: export_main([str(run), "--repeats", "1", "--quantize", "none"]), run / "deploy.json"),
                             (lambda: report_main([str(run), "--out", str(tmp_path / "report")]), tmp_path / "report/report.json")):
        with monkeypatch.context() as patched:
            install({"full_disk": written.name}, patched.setattr)
            with pytest.raises(SystemExit) as exit_:
                command()
        assert exit_.value.code != 0 and "no space left on the device" in capsys.readouterr().err + str(exit_.value.code)
        assert not written.exists()
        no_temporaries(tmp_path)
        command()  # the same command, the disk freed
        assert json.loads(written.read_text())
    no_temporaries(tmp_path)


def test_a_requeued_job_continues_in_its_own_folder(tmp_path: Path, uninterrupted: dict,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A multirun job that SLURM requeues (submitit) starts again in the same folder: with ``resume=true``
    it continues from its own checkpoint there, instead of starting over from step 0."""
    from kd.job import train
    from tests.conftest import compose_config

    killed = kd_process(tmp_path, "job", fault={"kill_step": 6})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    own = tmp_path / "runs/job"
    cfg = compose_config([*JOB, "resume=true"], tmp_path / "compose")
    with open_dict(cfg):  # as the requeued job sees it: its own folder, the same log and teacher folders
        cfg.paths.update(output_dir=str(own), log_dir=str(tmp_path), teacher_weights_dir=str(tmp_path / "teachers"),
                         teacher_outputs_dir=str(tmp_path / "teacher_outputs"))
    capsys.readouterr()
    train(cfg)
    assert f"[kd] resume: continuing {own} from {own}/checkpoints/resume.ckpt" in capsys.readouterr().out
    assert compared(finished_run(tmp_path)) == compared(uninterrupted) and not (own / "resumed.json").exists()
    train(cfg)  # requeued once more after it finished: nothing to do
    assert f"[kd] resume: this job already finished in {own}; nothing to do" in capsys.readouterr().out
    no_temporaries(tmp_path)


def test_a_slurm_job_signalled_before_its_end_is_requeued_and_continues_from_that_step(
        tmp_path: Path, uninterrupted: dict) -> None:
    """submitit's USR2 (a time limit near, or preemption) at step 4 of 8, through a stand-in sbatch, srun and
    scontrol: kd writes a resume point at that step, submitit requeues the job, and the restarted job (same
    command, no resume=true) continues from it in the same folder and ends as the uninterrupted run."""
    from tests.launch.test_launchers import FAKE_SLURM

    record = tmp_path / "sbatch"
    env = {**os.environ, "PATH": f"{FAKE_SLURM}:{os.environ['PATH']}", "KD_FAKE_SLURM_RECORD": str(record),
           "KD_FAKE_SLURM_FAULT": json.dumps({"signal_step": 4, "signal": "SIGUSR2"}), "PYTHONUNBUFFERED": "1"}
    args = [*JOB, f"paths.log_dir={tmp_path}", "+sweep=submitit_slurm", f"hydra.sweep.dir={tmp_path}/runs/sweep",
            "hydra.launcher.partition=cpu", "hydra.launcher.timeout_min=60", "hydra.launcher.cpus_per_task=1"]
    done = subprocess.run([sys.executable, "-m", "kd.run", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "runs/sweep/.submitit").rglob("*_log.*")))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + logs[-5000:]
    job = tmp_path / "runs/sweep/0"
    assert "[kd] USR2 received: resume point written at step 5" in logs  # the end of the step it came in
    assert "Requeued job" in logs and "SLURM_RESTART_COUNT=1" in logs
    assert f"[kd] resume: continuing {job} from {job}/checkpoints/resume.ckpt" in logs
    assert compared(finished_run(tmp_path)) == compared(uninterrupted)
    no_temporaries(tmp_path)
