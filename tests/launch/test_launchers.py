"""Hydra's launcher and sweeper plugins, run for real on tiny jobs: submitit (local executor, and SLURM
through a stand-in sbatch/srun), joblib and Optuna. Every sweep has a failing job, which must be
recorded without stopping the others."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kd.report.__main__ import main as report_main
from tests.conftest import CONF_DIR
from tests.paths import FIXTURES

REPO = CONF_DIR.parent
FAKE_SLURM = FIXTURES / "fake_slurm"
TINY = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "progress_bar=false", "logger=csv"]


def multirun(tmp: Path, *overrides: str, env: dict[str, str] | None = None) -> str:
    args = [*TINY, f"paths.log_dir={tmp}", f"paths.teacher_weights_dir={tmp}/teachers",
            f"paths.teacher_outputs_dir={tmp}/teacher_outputs", f"hydra.sweep.dir={tmp}/sweep", *overrides]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "kd.run", *args], cwd=REPO, env=full_env, text=True,
                            capture_output=True, timeout=900, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result.stdout + result.stderr


def jobs(sweep: Path) -> dict[str, list[Path]]:
    """Job folders by outcome: ``finished`` (metrics.json) and ``failed`` (failed.json)."""
    folders = [p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()]
    return {"finished": sorted(p for p in folders if (p / "metrics.json").is_file()),
            "failed": sorted(p for p in folders if (p / "failed.json").is_file())}


def assert_failure_recorded(failed: list[Path]) -> None:
    (job,) = failed
    record = json.loads((job / "failed.json").read_text())
    assert record["error_type"] == "RunError" and "became non-finite" in record["error"]


def two_jobs_and_a_failure(tmp: Path, sweep: str) -> list[Path]:
    """Run ``loss.temperature=1,4,1e30`` under ``+sweep=<sweep>`` (at 1e30 the loss is not finite: that job
    fails as it trains); the folders of the two finished jobs."""
    multirun(tmp, f"+sweep={sweep}", "loss=kd", "loss.temperature=1,4,1e30")
    found = jobs(tmp / "sweep")
    assert len(found["finished"]) == 2
    assert_failure_recorded(found["failed"])
    return found["finished"]


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_its_own_process_and_kd_report_collects_them(tmp_path: Path) -> None:
    two_jobs_and_a_failure(tmp_path, "submitit_local")
    logs = list((tmp_path / "sweep/.submitit").rglob("*_log.out"))  # one per job: each its own process
    assert len(logs) == 3 and len(list((tmp_path / "teachers").glob("*/teacher.ckpt"))) == 1
    report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    rows = {r["configuration"]: r for r in json.loads((tmp_path / "report/report.json").read_text())["rows"]}
    assert rows["loss.temperature=1"]["runs"] == rows["loss.temperature=4"]["runs"] == 1
    assert rows["loss.temperature=1e+30"]["failed"] == 1


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_sharing_the_cores(tmp_path: Path) -> None:
    finished = two_jobs_and_a_failure(tmp_path, "joblib")
    configs = [yaml.safe_load((job / "config_resolved.yaml").read_text()) for job in finished]
    # n_jobs=2: each job gets half the cores (two 1-thread jobs on 2 cores, not two 2-thread ones)
    assert {c["threads"] for c in configs} == {max(1, len(os.sched_getaffinity(0)) // 2)}


@pytest.mark.slow
def test_optuna_study_records_its_trials_and_kd_report_shows_the_best(tmp_path: Path) -> None:
    multirun(tmp_path, "+sweep=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=1",
             "hydra.sweeper.params={loss: 'choice(kd, fkl)', loss.temperature: 'choice(4.0, -1.0)'}")
    found = jobs(tmp_path / "sweep")
    assert len(found["finished"]) + len(found["failed"]) == 6 and found["failed"] and found["finished"]
    best = yaml.safe_load((tmp_path / "sweep/optimization_results.yaml").read_text())
    accs = [json.loads((job / "metrics.json").read_text())["val/acc_best"] for job in found["finished"]]
    assert best["best_value"] == pytest.approx(max(accs))
    assert best["best_params"]["loss.temperature"] != -1.0
    report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    table = (tmp_path / "report/report.md").read_text()
    assert "Optuna" in table and f"{100 * best['best_value']:.2f}" in table


@pytest.mark.slow
def test_submitit_slurm_job_script_and_its_two_ranks(tmp_path: Path) -> None:
    """The sbatch script asks for what trainer=ddp needs; a stand-in sbatch/srun runs it here (2 tasks)."""
    record = tmp_path / "sbatch"
    env = {"PATH": f"{FAKE_SLURM}:{os.environ['PATH']}", "KD_FAKE_SLURM_RECORD": str(record)}
    multirun(tmp_path, "+sweep=submitit_slurm", "trainer=ddp", "hydra.launcher.partition=cpu-short",
             "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=1", "loss=kd",
             "loss.temperature=4,1e30", env=env)
    (script,) = [p.read_text() for p in record.glob("*.sh")]
    for line in ("#SBATCH --partition=cpu-short", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --time=30", "#SBATCH --cpus-per-task=1", "#SBATCH --array=0-1%2"):
        assert line in script, script
    assert re.search(r"^srun --unbuffered .*-m submitit\.core\._submit ", script, re.MULTILINE), script
    found = jobs(tmp_path / "sweep")
    (job,) = found["finished"]
    assert_failure_recorded(found["failed"])
    outputs = "".join(p.read_text() for p in (tmp_path / "sweep/.submitit").rglob("*_log.*"))
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in outputs  # Lightning read SLURM's ranks
    assert outputs.count("[kd] training teacher tiny") == 1  # rank 0 trained it; rank 1 waited
    assert json.loads((job / "metrics.json").read_text())["test/acc"] >= 0
