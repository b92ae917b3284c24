"""W&B's client is imported and its service started before torch when the job logs to W&B from this
process, and not early otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kd.launch import processes
from kd.utils import wandb_first
from kd.utils.wandb_first import WANDB_MODULES, logs_to_wandb
from tests.conftest import CONF_DIR

# Compose the real config, run the config check, and report the order in which modules were first imported.
CHECK = """
import json, sys
from hydra import compose, initialize_config_dir
from kd.jobs.validate import check_config
with initialize_config_dir(config_dir={conf!r}, version_base="1.3"):
    cfg = compose(config_name="train", overrides={overrides!r})
check_config(cfg)
print(json.dumps(list(sys.modules)))
"""
# The same check, recording whether torch was loaded when W&B's service process was launched; then
# Lightning's WandbLogger, as the job configures it (offline), starts its run on that service.
SERVICE = """
import json, sys
from wandb.sdk.lib.service import service_process
launched = []
launch = service_process._launch_server
def recording_launch(*args, **kwargs):
    launched.append("torch" in sys.modules)
    return launch(*args, **kwargs)
service_process._launch_server = recording_launch
from hydra import compose, initialize_config_dir
from kd.jobs.validate import check_config
with initialize_config_dir(config_dir={conf!r}, version_base="1.3"):
    cfg = compose(config_name="train", overrides=["loss=kd"])
check_config(cfg)
check_config(cfg)  # a job checks twice (before Hydra's run folder, then in the job): one service
from lightning.pytorch.loggers import WandbLogger
run = WandbLogger(project="kd", save_dir={out!r}, offline=cfg.logger.offline).experiment
print(json.dumps({{"torch_loaded_at_launch": launched, "offline": run.settings._offline}}))
run.finish()
"""


def child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=CONF_DIR.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()[-1]


@pytest.mark.slow
def test_a_job_that_logs_to_wandb_imports_its_client_before_torch() -> None:
    order = json.loads(child(CHECK.format(conf=str(CONF_DIR), overrides=["loss=kd"])))  # logger=wandb: the default
    assert "torch" in order
    assert all(order.index(name) < order.index("torch") for name in WANDB_MODULES)


@pytest.mark.slow
def test_a_job_that_logs_to_wandb_starts_its_service_once_before_torch_and_stays_offline(tmp_path) -> None:
    # No W&B variable (WANDB_SERVICE: a service this test process started, which a child would join)
    env = {k: v for k, v in os.environ.items() if k not in processes._RANK_VARIABLES and not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # W&B's own logs there
    done = subprocess.run([sys.executable, "-c", SERVICE.format(conf=str(CONF_DIR), out=str(tmp_path))],
                          cwd=CONF_DIR.parent, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # offline as configured (logger.offline), though W&B was set up before the logger said so
    assert json.loads(done.stdout.splitlines()[-1]) == {"torch_loaded_at_launch": [False], "offline": True}
    assert "will be ignored" not in done.stderr  # W&B's warning when its environment changed after set-up
    assert list(tmp_path.glob("wandb/offline-run-*"))


WANDB = "lightning.pytorch.loggers.WandbLogger"


@pytest.mark.parametrize(("target", "rank", "env_set", "imports", "starts"), [
    (WANDB, None, {}, True, True),
    (WANDB, "0", {"OMP_NUM_THREADS": "2"}, True, True),
    (WANDB, "1", {}, False, False),  # ranks 1.. of a multi-process job log nothing
    (WANDB, None, {"WANDB_ENTITY": "team"}, True, False),  # W&B must read what Hydra sets as the job starts
    ("lightning.pytorch.loggers.CSVLogger", None, {}, False, False),
])
def test_only_the_process_that_logs_to_wandb_starts_it_early(monkeypatch, target: str, rank: str | None,
                                                             env_set: dict, imports: bool, starts: bool) -> None:
    for name in processes._RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if rank is not None:
        monkeypatch.setenv("LOCAL_RANK", rank)
    imported: list[str] = []
    started: list[bool] = []
    monkeypatch.setattr(wandb_first.importlib, "import_module", imported.append)
    monkeypatch.setattr(wandb_first, "start_service", lambda: started.append(True))
    cfg = {"logger": {"_target_": target, "offline": False}, "hydra": {"job": {"env_set": env_set}}}
    wandb_first.start_wandb_first(OmegaConf.create(cfg))
    assert imported == (list(WANDB_MODULES) if imports else [])
    assert started == ([True] if starts else [])


def test_a_failed_early_start_is_left_to_wandb_init(monkeypatch) -> None:
    import wandb

    def fail() -> None:
        raise RuntimeError("no service")

    monkeypatch.setattr(wandb, "setup", fail)
    wandb_first._setup_wandb()  # wandb.init starts the service again and reports why it cannot


def test_the_wandb_logger_is_recognised_by_its_target() -> None:
    assert logs_to_wandb(OmegaConf.create({"logger": {"_target_": "lightning.pytorch.loggers.WandbLogger"}}))
    assert not logs_to_wandb(OmegaConf.create({"logger": {"_target_": "lightning.pytorch.loggers.CSVLogger"}}))
    assert not logs_to_wandb(OmegaConf.create({"logger": None}))
    assert not logs_to_wandb(OmegaConf.create({}))
