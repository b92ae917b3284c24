"""Multirun: separate folders and W&B runs per job, a failing job recorded; kd.report over the result."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kd.report.__main__ import main as report_main
from kd.report.table import write_report
from tests.cli import THREADS, TINY_CLI, run_cli
from tests.conftest import CONF_DIR

REPO = CONF_DIR.parent


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Six tiny jobs: temperature 1 and 4 (and 1e30, whose loss is not finite: those jobs must fail as they
    train) x seeds 0 and 1."""
    tmp = tmp_path_factory.mktemp("sweep")
    args = ["-m", "data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", f"threads={THREADS}",
            "loss=kd", "loss.temperature=1,4,1e30", "seed=0,1", f"paths.log_dir={tmp}",
            f"hydra.sweep.dir={tmp / 'multirun'}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, "-m", "kd.run", *args], cwd=REPO, check=False, capture_output=True, text=True,
                            timeout=600, env=env)
    return tmp / "multirun", result


@pytest.mark.slow
def test_multirun_gives_every_job_its_folder_and_wandb_run_and_survives_a_failure(sweep) -> None:
    root, result = sweep
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 6
    failed = [j for j in jobs if (j / "failed.json").is_file()]
    succeeded = [j for j in jobs if (j / "metrics.json").is_file()]
    assert len(failed) == 2 and len(succeeded) == 4
    for job in failed:
        record = json.loads((job / "failed.json").read_text())
        assert record["error_type"] == "RunError" and "became non-finite" in record["error"]
        assert "loss.temperature=1e+30" in record["overrides"]  # as Hydra writes it
        assert "kd.errors.RunError: loss term 'ce'" in (job / "error.txt").read_text()
    wandb_runs = [run for job in succeeded for run in job.glob("wandb/offline-run-*")]
    assert len(wandb_runs) == 4
    configs = [yaml.safe_load((job / "config_resolved.yaml").read_text()) for job in succeeded]
    groups = {c["run"]["group"] for c in configs}
    assert len(groups) == 1 and groups.pop().startswith("sweep-")  # one W&B group per sweep
    common = "data=synthetic,loss.temperature={},loss=kd,seed={},student=tiny,teacher=tiny,trainer=smoke"
    assert {c["run"]["name"] for c in configs} == {common.format(t, s) for t in (1, 4) for s in (0, 1)}
    assert "the other jobs continue" in result.stderr


@pytest.mark.slow
def test_each_offline_wandb_run_holds_its_job(sweep) -> None:
    root, _ = sweep
    job = next(j for j in sorted(root.iterdir()) if (j / "metrics.json").is_file())
    (run,) = job.glob("wandb/offline-run-*")
    wandb = Path(sys.executable).with_name("wandb")
    inspected = subprocess.run([str(wandb), "leet", "inspect", "--summary", "--json", str(run)],
                               capture_output=True, text=True, timeout=120, check=True)
    record = json.loads(inspected.stdout)
    metrics = json.loads((job / "metrics.json").read_text())
    config = yaml.safe_load((job / "config_resolved.yaml").read_text())
    assert record["name"] == config["run"]["name"] and set(config["run"]["tags"]) <= set(record["tags"])
    assert record["summary"]["val/acc_best"] == {"max": pytest.approx(metrics["val/acc_best"])}  # define_metric
    assert record["summary"]["test/acc"] == pytest.approx(metrics["test/acc"])
    assert record["config"]["loss"]["temperature"] == config["loss"]["temperature"]  # the resolved config


@pytest.mark.slow
def test_report_rows_equal_the_saved_metrics(sweep, tmp_path: Path, capsys) -> None:
    root, _ = sweep
    out = tmp_path / "report"
    report_main([str(root), "--out", str(out)])
    assert "kd report" in capsys.readouterr().out
    result = json.loads((out / "report.json").read_text())
    rows = {row["configuration"]: row for row in result["rows"]}
    assert set(rows) == {"loss.temperature=1", "loss.temperature=4", "loss.temperature=1e+30"}
    assert (rows["loss.temperature=1e+30"]["runs"], rows["loss.temperature=1e+30"]["failed"]) == (0, 2)
    for t in (1, 4):
        accs = [json.loads((job / "metrics.json").read_text())["test/acc"] for job in root.iterdir()
                if (job / "metrics.json").is_file()
                and yaml.safe_load((job / "config_resolved.yaml").read_text())["loss"]["temperature"] == t]
        row = rows[f"loss.temperature={t}"]
        assert row["runs"] == 2 and row["failed"] == 0
        assert row["test/acc"]["mean"] == pytest.approx(statistics.fmean(accs))
        assert row["test/acc"]["std"] == pytest.approx(statistics.stdev(accs))
    table = (out / "report.md").read_text()
    assert table.count("| loss.temperature=") == 3 and "## Failed runs" in table
    assert "`data=synthetic`" in table and "`loss=kd`" in table and "`student=tiny`" in table  # shared settings
    assert {Path(p).name for p in result["plots"]} == {"report_temperature.png", "report_loss.png", "report_cost.png",
                                                          "report_tradeoff.png"}
    assert all((out / Path(p).name).stat().st_size > 1000 for p in result["plots"])
    assert len(result["failed"]) == 2


def test_a_sweep_with_an_invalid_job_starts_no_job(tmp_path: Path) -> None:
    """Every job of a listed sweep is checked before the first starts (Hydra's basic sweeper): one bad
    value stops the sweep, naming the job, before a teacher is trained or a folder written."""
    sweep_dir = tmp_path / "multirun"
    code, err = run_cli("-m", *TINY_CLI, "loss=kd", "loss.temperature=1,-2", "seed=0,1", f"paths.log_dir={tmp_path}",
                        f"hydra.sweep.dir={sweep_dir}")
    assert code == 2, err[-3000:]
    assert ("error: the sweep starts no job: job #2 (loss.temperature=-2 seed=0), #3 (loss.temperature=-2 seed=1) "
            "of 4: invalid config value: loss.temperature=-2: must be a number > 0") in err, err[-3000:]
    assert list(tmp_path.iterdir()) == []  # no sweep folder, no teacher
    code, err = run_cli("-m", *TINY_CLI, "loss=kd,dkd", "loss.temperature=0", f"paths.log_dir={tmp_path}",
                        f"hydra.sweep.dir={sweep_dir}")
    assert code == 2 and "the sweep starts no job: every job: invalid config value: loss.temperature=0" in err, err


def test_a_sweep_over_a_key_that_some_options_lack_starts_no_job(tmp_path: Path) -> None:
    """``loss=kd,feature loss.temperature=1,2``: the feature loss has no temperature, so its jobs do not
    compose. The sweep is refused before any folder, naming those jobs, the keys their loss has and
    what to do; a key that no job has gets the closest key. No value is checked while a job does not
    compose, so this answers before torch is imported (tests/test_run.py)."""
    sweep_dir = tmp_path / "multirun"
    code, err = run_cli("-m", *TINY_CLI, "loss=kd,feature", "loss.temperature=1,2", f"paths.log_dir={tmp_path}",
                        f"hydra.sweep.dir={sweep_dir}")
    assert code == 2, err[-3000:]
    assert ("error: the sweep starts no job: job #2 (loss=feature loss.temperature=1), #3 (loss=feature "
            "loss.temperature=2) of 4: the config has no key 'loss.temperature'; keys under 'loss': ") in err, err
    assert "student_layer" in err and "loss=feature --cfg job` prints them all" in err
    assert err.rstrip().endswith("(sweep it in a command of its own, over the options that have it)"), err
    assert list(tmp_path.iterdir()) == []  # no sweep folder (Hydra writes multirun.yaml before its own check)
    code, err = run_cli("-m", *TINY_CLI, "loss=kd,dkd", "loss.temprature=1,2", f"paths.log_dir={tmp_path}",
                        f"hydra.sweep.dir={sweep_dir}")
    assert code == 2, err[-3000:]
    assert err.rstrip().endswith("the sweep starts no job: every job: the config has no key 'loss.temprature'; "
                                 "did you mean loss.temperature?"), err
    assert list(tmp_path.iterdir()) == []
    code, err = run_cli("-m", *TINY_CLI, "loss=kd,nope", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep_dir}")
    assert code == 2, err[-3000:]
    assert ("the sweep starts no job: job #1 (loss=nope) of 2: its config does not compose: In 'train': Could not "
            "find 'loss/nope'; the options there: ab, at, attention, ") in err, err
    assert list(tmp_path.iterdir()) == []


def test_report_on_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no runs"):
        write_report([tmp_path])
    assert list(tmp_path.iterdir()) == []  # no report.md, no plots


def test_report_on_a_mistyped_folder_names_it_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "multirn"
    with pytest.raises(SystemExit, match=r"multirn: no such folder; give the folders that hold the runs"):
        write_report([tmp_path, typo])
    assert not typo.exists()
    (tmp_path / "report.md").write_text("an older report")
    with pytest.raises(SystemExit, match=r"report.md: a file, not a folder; give the folders that hold the runs"):
        write_report([tmp_path / "report.md"])
    with pytest.raises(SystemExit, match=r"--out .*report.md: a file, not a folder; give the folder for report.md"):
        write_report([tmp_path], tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == "an older report"
