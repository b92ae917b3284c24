"""Exact resume after SIGKILL, re-run sweeps that skip finished jobs, and same seed -> same metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from kd.data.batches import PositionSeededBatches
from kd.job import train
from kd.jobs.resume import latest_checkpoint
from kd.report.runs import find_runs
from kd.training import best_checkpoint
from kd.utils.hashing import file_sha256
from tests.cli import THREADS, snapshot
from tests.paths import REPO

# Augmented batches and CRD (random negatives, memory banks): every kind of state a resume must restore.
LONG_RUN = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}",
            "progress_bar=false", "loss=crd", "data.module.augment=true", "data.module.source.train_size=1024",
            "trainer.max_epochs=3", "trainer.limit_train_batches=1.0", "checkpoint_every_n_steps=3"]
NOT_COMPARED = ("time/", "student/latency_ms", "teacher/latency_ms", "best_checkpoint", "resumed_from",
                "train/samples_per_s", "train/tokens_per_s")  # timings


def kd_run(*overrides: str, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "kd.run", *overrides], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def compared(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith(NOT_COMPARED)}


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    teachers = f"paths.teacher_weights_dir={tmp_path}/teachers"
    finish(kd_run(*LONG_RUN, teachers, f"paths.log_dir={tmp_path}/a", f"hydra.run.dir={tmp_path}/a/run"))
    uninterrupted = json.loads((tmp_path / "a/run/metrics.json").read_text())

    killed_dir, log_dir = tmp_path / "b/run", f"paths.log_dir={tmp_path}/b"
    proc = kd_run(*LONG_RUN, teachers, log_dir, f"hydra.run.dir={killed_dir}")
    resume_point = killed_dir / "checkpoints/resume.ckpt"
    for line in proc.stdout:  # after the first epoch ends, wait for a mid-epoch resume point, then kill
        if line.startswith("epoch 1/3"):
            epoch_end = time.time()
            break
    while not (resume_point.is_file() and resume_point.stat().st_mtime > epoch_end):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not (killed_dir / "metrics.json").exists()
    saved = torch.load(resume_point, weights_only=True)
    steps_per_epoch = 16
    assert saved["global_step"] % steps_per_epoch != 0  # killed mid-epoch, after a mid-epoch checkpoint

    out = finish(kd_run(*LONG_RUN, teachers, log_dir, f"hydra.run.dir={tmp_path}/b/again", "resume=true"))
    assert f"[kd] resume: continuing {killed_dir} from {killed_dir}/checkpoints/" in out
    resumed = json.loads((killed_dir / "metrics.json").read_text())  # finished where it began
    assert resumed["resumed_from"] and compared(resumed) == compared(uninterrupted)
    assert resumed["epochs"] == 3 and len(compared(resumed)) > 20
    assert json.loads((tmp_path / "b/again/resumed.json").read_text())["continued_in"] == str(killed_dir)


def test_same_config_and_seed_give_identical_metrics(make_cfg) -> None:
    overrides = ["loss=crd", "data.module.augment=true", "trainer.max_epochs=2"]
    first, second = train(make_cfg(*overrides)), train(make_cfg(*overrides))
    assert compared(first) == compared(second) and len(compared(first)) > 20
    assert compared(train(make_cfg(*overrides, "seed=1"))) != compared(first)  # the seed does matter


@pytest.mark.slow
def test_interrupted_sweep_rerun_skips_finished_jobs(tmp_path: Path) -> None:
    sweep = ["-m", *LONG_RUN, "trainer.max_epochs=2", f"paths.log_dir={tmp_path}", f"paths.teacher_weights_dir={tmp_path}/t",
             "loss.nce_t=0.07,0.1,0.2"]
    proc = kd_run(*sweep, f"hydra.sweep.dir={tmp_path}/first")
    finished = tmp_path / "first/0/metrics.json"
    while not ((tmp_path / "first/1/checkpoints/resume.ckpt").is_file() and finished.is_file()):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    job0 = snapshot(tmp_path / "first/0")

    out = finish(kd_run(*sweep, f"hydra.sweep.dir={tmp_path}/second", "resume=true"))
    assert f"[kd] resume: this job finished in {tmp_path}/first/0; skipped" in out
    assert f"[kd] resume: continuing {tmp_path}/first/1 from" in out
    assert snapshot(tmp_path / "first/0") == job0  # the finished job was not touched, let alone re-trained
    assert json.loads((tmp_path / "second/0/metrics.json").read_text())["reused_from"] == str(tmp_path / "first/0")
    assert (tmp_path / "first/1/metrics.json").is_file()  # the killed job finished in its own folder
    assert (tmp_path / "second/2/metrics.json").is_file() and not (tmp_path / "first/2/metrics.json").exists()
    found = [run.path.relative_to(tmp_path) for run in find_runs([tmp_path / "first", tmp_path / "second"])]
    assert sorted(map(str, found)) == ["first/0", "first/1", "second/2"]  # kd.report counts the skipped job once
    assert [run.path.name for run in find_runs([tmp_path / "second"])] == ["0", "2"]  # its run is elsewhere: kept


def test_loader_position_state_skips_the_batches_already_trained_on() -> None:
    sampler = PositionSeededBatches(size=10, batch_size=3, seed=7)
    sampler.set_epoch(2)
    batches = iter(sampler)
    first_two = [next(batches), next(batches)]
    randomness_of_step_1 = torch.rand(3)
    state = sampler.state_dict()
    rest = list(batches)
    assert state == {"epoch": 2, "handed_out": 2, "seed": 7} and len(rest) == 2
    assert sorted(i for batch in first_two + rest for i in batch) == list(range(10))

    resumed = PositionSeededBatches(size=10, batch_size=3, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)
    assert list(resumed) == rest  # goes on after the batches handed out before the checkpoint
    assert list(resumed) == first_two + rest  # the skip applies once

    sampler.set_epoch(2)
    replay = iter(sampler)
    next(replay), next(replay)
    assert torch.equal(torch.rand(3), randomness_of_step_1)  # step k's randomness depends on (seed, epoch, k) only
    sampler.set_epoch(3)
    assert list(sampler) != first_two + rest  # another epoch, another order


def test_latest_checkpoint_skips_a_file_cut_short(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"global_step": 4}, folder / "last.ckpt")
    time.sleep(0.01)
    (folder / "resume.ckpt").write_bytes(b"PK\x03\x04 cut short")  # newer, but a kill cut the write
    assert latest_checkpoint(tmp_path) == folder / "last.ckpt"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_best_checkpoint_of_a_run_whose_folder_moved_is_found_in_its_new_folder(tmp_path: Path) -> None:
    here = tmp_path / "moved/checkpoints"
    here.mkdir(parents=True)
    (here / "epoch_002.ckpt").write_bytes(b"weights")
    callback = ModelCheckpoint(dirpath=here)
    callback.best_model_path = str(tmp_path / "before/checkpoints/epoch_002.ckpt")  # as the resumed checkpoint had it
    assert best_checkpoint(callback) == str(here / "epoch_002.ckpt")
    (tmp_path / "before/checkpoints").mkdir(parents=True)
    (tmp_path / "before/checkpoints/epoch_002.ckpt").write_bytes(b"old")  # the old file still there: it is used
    assert best_checkpoint(callback) == callback.best_model_path
    callback.best_model_path = ""
    assert best_checkpoint(callback) is None and best_checkpoint(None) is None


def test_a_failed_run_that_is_resumed_and_finishes_is_reported_as_finished(tmp_path: Path) -> None:
    from kd.jobs.job_record import FAILURE_FILE, RESUMED_FAILURE_FILE
    from kd.jobs.resume import ResumePlan, apply_plan
    from tests.conftest import compose_config

    cfg = compose_config(["data=synthetic"], tmp_path)
    failed_run = tmp_path / "failed_run"
    failed_run.mkdir()
    (failed_run / FAILURE_FILE).write_text(json.dumps({"error_type": "RunError", "error": "disk full"}))
    assert find_runs([tmp_path])[0].error == "RunError: disk full"
    apply_plan(cfg, ResumePlan("continue", failed_run, failed_run / "last.ckpt"))
    assert cfg.paths.output_dir == str(failed_run) and not (failed_run / FAILURE_FILE).exists()
    assert json.loads((failed_run / RESUMED_FAILURE_FILE).read_text())["error"] == "disk full"  # kept, aside
    (failed_run / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    [run] = [r for r in find_runs([tmp_path]) if r.path == failed_run]
    assert run.error is None and run.metrics == {"test/acc": 0.5}
    # a failure recorded by an older kd, beside metrics written after it: the metrics win
    (failed_run / FAILURE_FILE).write_text(json.dumps({"error_type": "RunError", "error": "old"}))
    os.utime(failed_run / FAILURE_FILE, (1, 1))
    [run] = [r for r in find_runs([tmp_path]) if r.path == failed_run]
    assert run.error is None


def test_a_job_slurm_restarted_continues_its_earlier_attempt_without_resume_true(tmp_path: Path, monkeypatch) -> None:
    """An srun job requeued by SLURM runs in slurm-<job>/<step>.restart<n>: it finds the attempt before it in
    slurm-<job>/<step> (the same job, with a resume point) and continues that one; a job never restarted starts."""
    from omegaconf import open_dict

    from kd.jobs.job_record import write_job_record
    from kd.jobs.resume import plan_resume
    from tests.conftest import compose_config

    cfg = compose_config(["data=synthetic", "loss=kd"], tmp_path / "compose")
    earlier, other = tmp_path / "runs/slurm-7/0", tmp_path / "runs/slurm-7/1"
    for folder in (earlier, other):
        (folder / "checkpoints").mkdir(parents=True)
        torch.save({"step": 5}, folder / "checkpoints/resume.ckpt")
    write_job_record(cfg, earlier)
    other_cfg = compose_config(["data=synthetic", "loss=kd", "seed=1"], tmp_path / "compose1")
    write_job_record(other_cfg, other)  # another job of the same allocation: not this one
    with open_dict(cfg):
        cfg.paths.update(output_dir=str(tmp_path / "runs/slurm-7/0.restart1"), log_dir=str(tmp_path / "elsewhere"))
    assert plan_resume(cfg).action == "fresh"  # not restarted: resume=false means a new run
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    plan = plan_resume(cfg)
    assert (plan.action, plan.run_dir, plan.checkpoint) == ("continue", earlier, earlier / "checkpoints/resume.ckpt")


def test_a_run_whose_data_files_changed_since_is_not_resumed(tmp_path: Path, capsys) -> None:
    """``job.json`` keeps the SHA-256 of the files the data config names: ``resume=true`` passes over an
    earlier run of the job whose files have changed since (it neither skips nor continues it), and
    ``resume=<that folder>`` is refused; a record from before files were hashed is resumed as before."""
    from kd.config.rules import JOB_FILE
    from kd.errors import ConfigError
    from kd.jobs.job_record import write_job_record
    from kd.jobs.resume import ResumePlan, plan_resume
    from tests.conftest import compose_config

    images = tmp_path / "images.npz"
    images.write_bytes(b"the images as they were")
    mine = ["data=image_files", f"data.module.source.path={images}", "data.num_classes=2", f"paths.log_dir={tmp_path}/logs"]
    earlier = tmp_path / "logs" / "earlier"
    earlier.mkdir(parents=True)
    write_job_record(compose_config(mine, tmp_path), earlier)
    (earlier / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    assert json.loads((earlier / JOB_FILE).read_text())["files_sha256"] == {"data.module.source.path": file_sha256(images)}
    assert plan_resume(compose_config([*mine, "resume=true"], tmp_path)) == ResumePlan("skip", earlier)
    images.write_bytes(b"the images after the user added some")
    assert plan_resume(compose_config([*mine, "resume=true"], tmp_path)) == ResumePlan("fresh")
    assert (f"{earlier} ran on other data (data.module.source.path={images} changed since); that run is not "
            "resumed") in capsys.readouterr().out
    with pytest.raises(ConfigError, match=rf"resume={earlier}: that run learned from other data: "
                                          rf"data.module.source.path={images} changed since"):
        plan_resume(compose_config([*mine, f"resume={earlier}"], tmp_path))
    record = json.loads((earlier / JOB_FILE).read_text())
    del record["files_sha256"]  # written by a kd that did not hash the files
    (earlier / JOB_FILE).write_text(json.dumps(record))
    assert plan_resume(compose_config([*mine, "resume=true"], tmp_path)) == ResumePlan("skip", earlier)
