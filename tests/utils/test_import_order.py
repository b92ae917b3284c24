"""W&B's client is imported before torch when the job logs to W&B, and not early otherwise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kd.utils import import_order
from kd.utils.import_order import WANDB_MODULES, logs_to_wandb
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


def modules_after_check(*overrides: str) -> list[str]:
    code = CHECK.format(conf=str(CONF_DIR), overrides=list(overrides))
    done = subprocess.run([sys.executable, "-c", code], cwd=CONF_DIR.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_job_that_logs_to_wandb_imports_its_client_before_torch() -> None:
    order = modules_after_check("loss=kd")  # logger=wandb is the default
    assert "torch" in order
    assert all(order.index(name) < order.index("torch") for name in WANDB_MODULES)


@pytest.mark.parametrize("target", ["lightning.pytorch.loggers.WandbLogger", "lightning.pytorch.loggers.CSVLogger"])
def test_only_a_job_that_logs_to_wandb_imports_its_client_early(monkeypatch, target: str) -> None:
    imported: list[str] = []
    monkeypatch.setattr(import_order.importlib, "import_module", imported.append)
    import_order.import_wandb_first(OmegaConf.create({"logger": {"_target_": target}}))
    assert imported == (list(WANDB_MODULES) if target.endswith("WandbLogger") else [])


def test_the_wandb_logger_is_recognised_by_its_target() -> None:
    assert logs_to_wandb(OmegaConf.create({"logger": {"_target_": "lightning.pytorch.loggers.WandbLogger"}}))
    assert not logs_to_wandb(OmegaConf.create({"logger": {"_target_": "lightning.pytorch.loggers.CSVLogger"}}))
    assert not logs_to_wandb(OmegaConf.create({"logger": None}))
    assert not logs_to_wandb(OmegaConf.create({}))
