"""End to end: every loss on tiny models, the teacher stage and its cache, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from kd.errors import ConfigError
from kd.job import train
from kd.jobs.modality import loss_modalities
from kd.training import build_loss
from tests.cli import THREADS, run_cli
from tests.conftest import CONF_DIR, TEXT_TINY

LOSSES = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))
MODALITY = {name: loss_modalities(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml")).get("modality"), name)
            for name in LOSSES}
REPO = CONF_DIR.parent
TEXT_OVERRIDES = {"feature": ["loss.student_layer=hidden1", "loss.teacher_layer=hidden2"], "attention": ["loss.heads=mean"]}


@pytest.mark.parametrize(
    ("loss", "modality"),
    [(name, "image") for name in LOSSES if "image" in MODALITY[name]]
    + [pytest.param(name, "text", marks=[] if name == "kd" else [pytest.mark.slow])
       for name in LOSSES if "text" in MODALITY[name]],
)
def test_fast_run_per_loss(make_cfg, loss: str, modality: str) -> None:
    if modality == "text":
        cfg = make_cfg(f"loss={loss}", *TEXT_OVERRIDES.get(loss, []), base=TEXT_TINY)
    else:
        cfg = make_cfg(f"loss={loss}")
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "metrics.json").read_text())["test/acc"] == pytest.approx(metrics["test/acc"])
    assert (out / "config_resolved.yaml").is_file()
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["val/acc_best"] >= metrics["val/acc"] - 1e-9
    assert 0.0 <= metrics["test/ece"] <= 1.0 and metrics["student/latency_ms"] > 0
    assert 0 < metrics["time/start_to_first_step_s"] < 3600  # kd.callbacks.FirstStepTime
    assert metrics["student/size_mb"] >= 4 * metrics["student/params"] / 1e6  # fp32 weights plus buffers
    for term in build_loss(cfg.loss).active:
        assert f"train/loss/{term}" in metrics
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("teacher.") for k in checkpoint["state_dict"])
    if loss == "ce":
        assert metrics["job_type"] == "baseline" and metrics["teacher_ckpt"] is None
        assert "test/agreement" not in metrics
    else:
        assert metrics["job_type"] == "distill"
        assert Path(metrics["teacher_ckpt"]).is_file()
        assert 0.0 <= metrics["test/agreement"] <= 1.0 and "test/teacher_acc" in metrics
        assert metrics["test/kl"] >= 0 and metrics["teacher/latency_ms"] > 0 and metrics["teacher/size_mb"] > 0


def test_training_learns_the_synthetic_task(make_cfg) -> None:
    cfg = make_cfg("loss=ce", "trainer.max_epochs=6", "trainer.limit_train_batches=null",
                   "trainer.limit_val_batches=null", "trainer.limit_test_batches=null")
    assert train(cfg)["test/acc"] > 0.8  # chance is 0.1; this reaches 0.94


def test_teacher_is_trained_once_then_reused(make_cfg, capsys) -> None:
    first = train(make_cfg("loss=kd"))
    ckpt = Path(first["teacher_ckpt"])
    stamp = ckpt.stat().st_mtime_ns
    second = train(make_cfg("loss=kd", "loss.temperature=2", "loss.alpha=0.5"))
    assert Path(second["teacher_ckpt"]) == ckpt and ckpt.stat().st_mtime_ns == stamp
    assert "reusing trained teacher" in capsys.readouterr().out
    assert second["test/teacher_acc"] == pytest.approx(first["test/teacher_acc"])
    third = train(make_cfg("loss=kd", "teacher.epochs=2"))  # another teacher config, another entry
    assert Path(third["teacher_ckpt"]) != ckpt
    assert len(list(ckpt.parent.parent.iterdir())) == 2


def test_a_ce_run_checkpoint_serves_as_teacher(make_cfg) -> None:
    teacher_channels = "student.net.channels=[8,8,16,16]"  # the architecture of teacher=tiny
    baseline = train(make_cfg("loss=ce", teacher_channels))
    distilled = train(make_cfg("loss=kd", f"teacher.ckpt={baseline['best_checkpoint']}"))
    assert distilled["teacher_ckpt"] == baseline["best_checkpoint"]
    assert distilled["test/teacher_acc"] == pytest.approx(baseline["test/acc"])


def test_student_from_scratch_is_one_override_away(make_cfg) -> None:
    metrics = train(make_cfg("loss=kd", "loss.alpha=0"))
    assert metrics["job_type"] == "baseline" and metrics["teacher_ckpt"] is None


def test_teacher_checkpoint_errors_are_clear(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="teacher.ckpt='.*nope.ckpt': must be an existing file"):
        train(make_cfg("loss=kd", f"teacher.ckpt={tmp_path / 'nope.ckpt'}"))
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 3).state_dict(), other)
    with pytest.raises(ConfigError, match="does not fit teacher=tiny"):
        train(make_cfg("loss=kd", f"teacher.ckpt={other}"))


def cli_args(tmp_path: Path, *overrides: str, run: str = "run", threads: int = THREADS) -> list[str]:
    logs = [] if any(o.startswith("paths.log_dir=") for o in overrides) else [f"paths.log_dir={tmp_path}"]
    args = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "logger=csv", f"threads={threads}",
            *logs, f"paths.teacher_weights_dir={tmp_path / 'teachers'}", f"hydra.run.dir={tmp_path / run}", *overrides]
    return [sys.executable, "-m", "kd.run", *args]


def cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cli_args(tmp_path, *overrides), cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_parallel_jobs_train_the_teacher_once(tmp_path: Path) -> None:
    jobs = [subprocess.Popen(cli_args(tmp_path, f"loss.temperature={t}", run=f"run{t}", threads=1), cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for t in (2, 4)]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    assert sum("[kd] training teacher" in out for out in outputs) == 1
    assert sum("[kd] reusing trained teacher" in out for out in outputs) == 1
    assert len(list((tmp_path / "teachers").iterdir())) == 1


@pytest.mark.slow
def test_cli_run_saves_config_checkpoints_and_metrics(tmp_path: Path) -> None:
    result = cli(tmp_path, "loss=feature")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["job_type"] == "distill" and "train/loss/feature" in metrics
    assert list(run.glob("csv/distill/version_*/metrics.csv"))
    (hparams,) = run.glob("csv/distill/version_*/hparams.yaml")  # the resolved config, logged
    assert "kd.losses.feature.FeatureHint" in hparams.read_text()
    assert "kd summary" in result.stdout and "python -m kd.run loss=ce student=tiny" in result.stdout
    output = result.stdout + result.stderr  # library noise would bury kd's own warnings
    assert [n for n in ("ambiguous collection", "LeafSpec", "💡 Tip") if n in output] == []
    assert output.count("Seed set to") == 2  # the teacher's training, then the student's run: once each


def test_cli_bad_tap_fails_with_a_clear_message(tmp_path: Path) -> None:
    code, err = run_cli(*cli_args(tmp_path, "loss=feature", "student.layers.stage3=layer9")[3:])
    assert code == 2
    assert "layers.stage3" in err and "Available module names" in err
    assert "Traceback" not in err


def test_cli_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    code, err = run_cli(*cli_args(tmp_path, "data=fashion_mnist", f"data.module.source.data_dir={tmp_path / 'empty'}",
                                  "loss=ce")[3:])
    assert code == 2
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err


def test_terms_combine_from_the_command_line(make_cfg) -> None:
    at = ("+loss.terms.at={weight: 1000, fn: {_target_: kd.losses.attention.AttentionTransfer, "
          "student_layers: [stage3], teacher_layers: [stage3]}}")
    cfg = make_cfg("loss=kd", "loss.alpha=0.5", at)
    loss = build_loss(cfg.loss)
    assert loss.weights == {"ce": 0.5, "kd": 0.5, "at": 1000.0}
    metrics = train(cfg)
    assert {"train/loss/ce", "train/loss/kd", "train/loss/at"} <= set(metrics)


def test_student_seeds_share_one_teacher(make_cfg) -> None:
    from kd.teacher.weights import teacher_weights_dir

    base = teacher_weights_dir(make_cfg())
    assert teacher_weights_dir(make_cfg("seed=1")) == base
    assert teacher_weights_dir(make_cfg("teacher.seed=1")) != base
    assert teacher_weights_dir(make_cfg("teacher.seed=null", "seed=1")) != base  # null: follow `seed`


def test_compile_switch_compiles_the_student_in_place(make_cfg, monkeypatch) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    train(make_cfg("loss=kd"))
    assert compiled == []
    train(make_cfg("loss=kd", "compile=true"))
    assert compiled == ["ResNet"]  # the student only; benchmarks/step_throughput.py times the real thing


def test_a_job_keeps_freed_memory_unless_told_not_to(make_cfg, monkeypatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr("kd.job.reuse_freed_memory", lambda: calls.append(True) or True)
    train(make_cfg("loss=ce", "reuse_freed_memory=false"))
    assert calls == []
    train(make_cfg("loss=ce"))
    assert calls == [True]  # tests/utils/test_allocator.py: what the call does


def test_summary_shows_the_baseline_run_of_the_same_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = f"paths.log_dir={tmp_path}"

    def summary(*overrides: str, run: str) -> str:  # the CLI, in this process: its stdout
        code, err = run_cli(*cli_args(tmp_path, *overrides, logs, run=run)[3:])
        assert code == 0, err[-3000:]
        return capsys.readouterr().out

    summary("loss=ce", run="base")
    scratch_acc = json.loads((tmp_path / "base/metrics.json").read_text())["test/acc"]
    out = " ".join(summary("loss=kd", run="kd").split())   # rich may wrap the table
    assert "student (from scratch)" in out and f"{100 * scratch_acc:.2f} %" in out
    assert f"same data, student, recipe and seed): {tmp_path / 'base'}" in out
    other_seed = summary("loss=kd", "seed=1", run="kd1")
    assert "student (from scratch)" not in other_seed      # seed 1 has no baseline yet: the hint instead
    (hint,) = [line for line in other_seed.splitlines() if "for comparison" in line]
    assert "python -m kd.run loss=ce student=tiny data=synthetic" in hint and "seed=1" in hint
    assert "loss=kd" not in hint and "hydra.run.dir" not in hint and "teacher=" not in hint and logs in hint
    assert f"paths.teacher_weights_dir={tmp_path}" in hint  # every path override: the command runs as it is


def test_the_baseline_command_keeps_every_override_but_the_teacher_s_and_the_run_folder(tmp_path: Path) -> None:
    from omegaconf import open_dict

    from kd.job import baseline_overrides
    from tests.conftest import compose_config

    cfg = compose_config(["data=synthetic", "loss=kd"], tmp_path)
    with open_dict(cfg):
        cfg.run.overrides = ["loss=kd", "seed=3", "paths.log_dir=/x", "paths.teacher_weights_dir=/t",
                             "hydra.searchpath=[file:///my/conf]", "hydra.run.dir=/r", "paths.output_dir=/o",
                             "teacher_outputs.top_k=4", "+sweep=seeds", "trainer.max_epochs=2", "teacher=resnet20"]
    assert baseline_overrides(cfg) == [
        "loss=ce", f"student={cfg.student.name}", "seed=3", "paths.log_dir=/x", "paths.teacher_weights_dir=/t",
        "hydra.searchpath=[file:///my/conf]", "trainer.max_epochs=2"]


HEAVY = ("torch", "lightning", "torchmetrics", "timm", "transformers", "torchvision", "wandb")


@pytest.mark.parametrize(("args", "status", "said"), [
    (["loss=kd", "loss.temperature=-1"], 2, "loss.temperature=-1: must be a number > 0"),
    (["data=fashion_mnist_5k", "optim.optimizer.lr=0"], 2, "optim.optimizer.lr=0: must be a number > 0"),
    (["-m", "loss=kd,feature", "loss.temperature=1,2"], 2, "job #2 (loss=feature loss.temperature=1)"),
    (["--help"], 0, ""),
])
def test_a_refused_value_and_help_answer_before_torch_is_imported(tmp_path, args: list[str], status: int, said: str) -> None:
    """The config check runs before kd imports torch, Lightning or a model library (docs/speed.md#start-up),
    and so does a sweep's check of its jobs' composition."""
    extra = [] if args == ["--help"] else [f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run",
                                           f"hydra.sweep.dir={tmp_path}/run"]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kd.run", *args, *extra], cwd=CONF_DIR.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr[-3000:]
    assert said in done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "hydra" in imported and "kd.jobs.validate" in imported or args == ["--help"]
    assert sorted(imported & set(HEAVY)) == []
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run (or sweep) folder


@pytest.mark.parametrize("overrides", [[], ["loss=dkd", "loss.temperature=2"]])
def test_kd_s_help_prints_what_hydra_s_own_help_prints(overrides: list[str]) -> None:
    """kd.jobs.help renders Hydra's help template itself; a hydra.* override sends --help to Hydra."""
    def help_of(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "kd.run", "--help", *overrides, *extra], cwd=CONF_DIR.parent,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    kd_s, hydra_s = help_of(), help_of("hydra.job.chdir=false")
    assert kd_s == hydra_s
    assert "\nloss: ab, at, " in kd_s and "\nstudent: " in kd_s and "\nhydra/" not in kd_s
    assert ("temperature: 2" in kd_s) == bool(overrides)


def test_help_with_a_mistyped_key_is_refused_with_the_closest_key() -> None:
    done = subprocess.run([sys.executable, "-m", "kd.run", "--help", "loss.temprature=3"], cwd=CONF_DIR.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "did you mean loss.temperature?" in done.stderr and done.stdout == ""


def test_which_help_calls_kd_answers() -> None:
    from kd.jobs.help import help_overrides

    assert help_overrides(["--help"]) == [] and help_overrides(["loss=kd", "-h"]) == ["loss=kd"]
    assert help_overrides(["loss=kd"]) is None                      # not a help call
    assert help_overrides(["--help", "hydra.searchpath=[file:///x]"]) is None  # Hydra's: the search path changes
    assert help_overrides(["--help", "--config-dir", "/x"]) is None
    assert help_overrides(["--hydra-help"]) is None
