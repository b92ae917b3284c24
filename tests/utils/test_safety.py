"""During training: non-finite losses and full disks stop a run clearly; secrets never reach outputs;
every checkpoint and cache is loaded with ``weights_only=True``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from kd.errors import RunError
from kd.job import train
from kd.jobs.records import as_run_error
from kd.utils.files import temporary_path
from tests.cli import TINY_CLI, run_cli
from tests.paths import REPO


def finite_weights(checkpoint: dict) -> bool:
    student = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("student.")}
    return bool(student) and all(bool(torch.isfinite(v).all()) for v in student.values() if v.is_floating_point())


def test_non_finite_loss_stops_the_run_naming_the_term(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs/nan"
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run_dir}", "loss=ce",
                        "optim.optimizer.lr=1e8", "checkpoint_every_n_steps=1", "trainer.max_epochs=2")
    assert code == 3 and "Traceback" not in err
    assert "loss term 'ce' (train/loss/ce) = nan became non-finite at epoch 0, step 2" in err
    assert f"last good checkpoint: {run_dir}/checkpoints/resume.ckpt" in err and "optim.optimizer.lr" in err
    kept = torch.load(run_dir / "checkpoints/resume.ckpt", weights_only=True)
    assert kept["global_step"] == 2 and finite_weights(kept)  # the update before the non-finite step
    failure = json.loads((run_dir / "failed.json").read_text())
    assert failure["error_type"] == "RunError" and "'ce'" in failure["error"]


def test_non_finite_weights_are_never_saved(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs/inf"  # finite losses, but BatchNorm statistics overflow: caught when saving
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run_dir}", "loss=ce",
                        "optim.optimizer.lr=1e4", "checkpoint_every_n_steps=1", "trainer.max_epochs=3")
    assert code == 3 and "Traceback" not in err
    assert re.search(r"checkpoint at step \d+: \S+ holds NaN or inf values, so it was not saved", err), err
    saved = list((run_dir / "checkpoints").glob("*.ckpt"))
    assert saved and all(finite_weights(torch.load(path, weights_only=True)) for path in saved)


def test_full_disk_is_reported_with_the_file_and_free_space(make_cfg) -> None:
    cfg = make_cfg("loss=ce")
    metrics = Path(cfg.paths.output_dir) / "metrics.json"
    partial = temporary_path(metrics)  # metrics.json is written whole: through this file
    partial.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    with pytest.raises(OSError) as raised:
        train(cfg)
    assert not partial.exists() and not partial.is_symlink() and not metrics.exists()  # nothing half-written stays
    err = as_run_error(raised.value, cfg)
    assert isinstance(err, RunError)
    assert f"could not write in {metrics.parent}: no space left on the device" in str(err)
    assert "MiB free on the disk holding" in str(err) and "paths.log_dir=" in str(err)


def test_unwritable_output_dir_is_a_config_error(make_cfg, tmp_path: Path) -> None:
    from omegaconf import open_dict

    from kd.errors import ConfigError

    cfg = make_cfg("loss=ce")
    (tmp_path / "file").write_text("x")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "file" / "run")
    with pytest.raises(ConfigError, match=r"paths.output_dir: could not write .*file/run: a part of the path is a file"):
        train(cfg)


def test_secrets_never_reach_configs_logs_or_wandb(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "kd-env-secret-0000000000000000000000000")
    secret = "kd-config-secret-1234"
    run_dir = tmp_path / "runs/secret"
    args = [a for a in TINY_CLI if a != "logger=csv"]
    # a key that something reads (W&B's settings, passed to wandb.init); a key nothing reads is refused
    code, err = run_cli(*args, f"paths.log_dir={tmp_path}", f"hydra.run.dir={run_dir}", "logger=wandb",
                        f"+logger.settings.api_key={secret}")
    assert code == 0, err[-3000:]
    assert list(run_dir.glob("wandb/offline-run-*")) and (run_dir / ".hydra/overrides.yaml").is_file()
    assert "+logger.settings.api_key=<redacted>" in (run_dir / ".hydra/overrides.yaml").read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert secret.encode() not in content and b"kd-env-secret" not in content, path


def test_every_torch_load_restricts_unpickling_to_weights() -> None:
    calls = [(path, line) for path in (REPO / "kd").rglob("*.py") for line in path.read_text().splitlines()
             if "torch.load(" in line]
    assert calls  # teacher checkpoints, teacher-output caches, resume checks
    assert all("weights_only=True" in line for _, line in calls), calls
    sources = "".join(p.read_text() for p in (REPO / "kd").rglob("*.py"))
    assert sources.count("weights_only=True") >= len(calls) + 2  # and trainer.fit / trainer.test loads

