"""Run folders written by kd 0.1 (b0d8114, before the config renames of issue 13) are still found by
``resume`` and read by ``kd.report``. The folders in tests/fixtures/runs_v0_1 were written by that version:
``kd`` finished; ``dkd`` is cut back to an interrupted run (its metrics.json removed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kd.config.migrations import upgrade_identity
from kd.jobs.job_record import job_identity, job_key
from kd.report.table import write_report
from tests.cli import run_cli
from tests.paths import FIXTURES

OLD_RUNS = FIXTURES / "runs_v0_1"
# The overrides those runs were started with (their .hydra/overrides.yaml), less bookkeeping keys, plus
# the precision that was the default then (now `auto`, which trains this teacher in bf16 where the CPU
# computes bf16: another job).
OLD_COMMAND = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "logger=csv", "progress_bar=false",
               "trainer.precision=32-true"]


def copy_old_runs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    shutil.copytree(OLD_RUNS, root / "runs")
    return root


def resume(root: Path, tmp_path: Path, loss: str, target: str = "true") -> tuple[int, str, Path]:
    new_dir = tmp_path / f"new_{loss}"
    code, err = run_cli(*OLD_COMMAND, f"loss={loss}", f"resume={target}", f"paths.log_dir={root}",
                        f"hydra.run.dir={new_dir}")
    return code, err, new_dir


def test_a_finished_old_run_is_found_and_skipped(tmp_path: Path) -> None:
    root = copy_old_runs(tmp_path)
    code, err, new_dir = resume(root, tmp_path, "kd")
    assert code == 0, err
    reused = json.loads((new_dir / "metrics.json").read_text())
    old = json.loads((root / "runs/kd/metrics.json").read_text())
    assert reused["reused_from"] == str(root / "runs/kd") and reused["test/acc"] == old["test/acc"]


def test_an_interrupted_old_run_with_renamed_loss_keys_continues_in_its_folder(tmp_path: Path) -> None:
    root = copy_old_runs(tmp_path)
    old_run = root / "runs/dkd"
    record = json.loads((old_run / "job.json").read_text())
    assert "alpha" in record["config"]["loss"] and "teacher_cache" in record["config"]  # the old names
    code, err, new_dir = resume(root, tmp_path, "dkd", target=str(old_run))
    assert code == 0, err
    assert json.loads((new_dir / "resumed.json").read_text())["continued_in"] == str(old_run)
    metrics = json.loads((old_run / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(old_run / "checkpoints/last.ckpt")
    # kd.report reads the old folders (their configs use the old names) next to the new ones
    result = write_report([root / "runs"], tmp_path / "report")
    rows = {row["configuration"]: row for row in result["rows"]}
    assert sorted(rows) == ["loss=dkd", "loss=kd"] and result["failed"] == []
    old = json.loads((root / "runs/kd/metrics.json").read_text())
    assert rows["loss=kd"]["test/acc"]["mean"] == old["test/acc"]
    assert rows["loss=dkd"]["test/acc"]["mean"] == metrics["test/acc"]


def test_the_upgrade_maps_old_names_and_leaves_new_identities_alone() -> None:
    old = json.loads((OLD_RUNS / "dkd/job.json").read_text())["config"]
    new = upgrade_identity(old)
    assert (new["loss"]["tckd_weight"], new["loss"]["nckd_weight"], new["loss"]["beta"]) == (1.0, 8.0, 1.0)
    assert new["loss"]["terms"]["dkd"]["fn"]["nckd_weight"] == 8.0 and "alpha" not in new["loss"]
    assert new["teacher_outputs"]["cache"] == "auto" and "teacher_cache" not in new
    assert upgrade_identity(new) == new


def test_where_the_teachers_view_logits_come_from_is_not_part_of_the_job(make_cfg) -> None:
    cached, live = (job_key(job_identity(make_cfg("loss=kd", f"teacher_outputs.augmented_views={on}")))
                    for on in ("true", "false"))
    assert cached == live != job_key(job_identity(make_cfg("loss=kd", "loss.temperature=2")))


def test_a_job_from_before_teacher_precision_is_the_same_job_with_the_trainers_precision(make_cfg) -> None:
    today = job_identity(make_cfg("loss=kd"))
    before = json.loads(json.dumps(today))
    del before["teacher_outputs"]["precision"]  # written before teacher_outputs.precision existed
    assert job_key(upgrade_identity(before)) == job_key(today)
    bf16 = job_identity(make_cfg("loss=kd", "teacher_outputs.precision=bf16-mixed"))
    assert job_key(bf16) != job_key(today)  # it changes the teacher's outputs: another job
