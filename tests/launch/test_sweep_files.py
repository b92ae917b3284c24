"""Every parameter named in every sweep file (Hydra and W&B) is a valid override of the main config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from tests.conftest import CONF_DIR, compose_config

SWEEPS = CONF_DIR.parent / "sweeps"
HYDRA_FILES = sorted((CONF_DIR / "sweep").glob("*.yaml"))   # the config group of +sweep=<name>
WANDB_FILES = sorted((SWEEPS / "wandb_sweeps").glob("*.yaml"))


def first_value(spec: object) -> str:
    """One concrete value of a sweep spec: ``1,2,4`` / ``choice(a, b)`` / ``tag(log, interval(1, 8))``."""
    text = str(spec).strip()
    inner = re.fullmatch(r"tag\(\w+,\s*(.*)\)", text)
    if inner:
        text = inner.group(1)
    call = re.fullmatch(r"(choice|interval|range)\((.*)\)", text)
    if call:
        text = call.group(2)
    return text.split(",")[0].strip()


def hydra_params(path: Path) -> dict[str, str]:
    params = yaml.safe_load(path.read_text())["hydra"].get("sweeper", {}).get("params") or {}
    return {key: first_value(value) for key, value in params.items()}


def wandb_params(path: Path) -> dict[str, str]:
    params = yaml.safe_load(path.read_text())["parameters"]
    return {key: str(spec["values"][0] if "values" in spec else spec["min"]) for key, spec in params.items()}


def assert_valid_overrides(params: dict[str, str], tmp_path: Path, base: list[str]) -> None:
    assert params, "a sweep file names no parameters"
    for key, value in params.items():
        try:
            compose_config([*base, f"{key}={value}"], tmp_path)
        except (HydraException, OmegaConfBaseException) as err:
            pytest.fail(f"{key}={value} is not a valid override of conf/train.yaml: {err}")


@pytest.mark.parametrize("path", HYDRA_FILES, ids=[p.stem for p in HYDRA_FILES])
def test_hydra_sweep_parameters_are_valid_overrides(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# @package _global_"), "sweep files are global experiment-style configs"
    plugin = re.search(r"override /hydra/(sweeper|launcher): (\w+)", text)
    base = [] if plugin else [f"+sweep={path.stem}"]  # plugin files compose only where the plugin is installed
    if "override /loss: kd" in text:
        base.append("loss=kd")
    params = hydra_params(path)
    if not params:  # launcher-only files (joblib, submitit) carry no parameters of their own
        assert plugin and plugin.group(1) == "launcher"
        return
    assert_valid_overrides(params, tmp_path, base)


@pytest.mark.parametrize("path", WANDB_FILES, ids=[p.stem for p in WANDB_FILES])
def test_wandb_sweep_parameters_are_valid_overrides(path: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert spec["metric"]["name"] == "val/acc_best" and "${args_no_hyphens}" in spec["command"]
    fixed = [arg for arg in spec["command"] if "=" in arg and not arg.startswith("$")]
    assert_valid_overrides(wandb_params(path), tmp_path, fixed)


def test_a_misspelt_parameter_is_caught(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="loss.temprature"):
        assert_valid_overrides({"loss.temprature": "2"}, tmp_path, ["loss=kd"])


def test_sweep_files_are_all_there() -> None:
    assert {p.stem for p in HYDRA_FILES} >= {"temperature_alpha", "loss_student", "seeds", "optuna", "joblib",
                                              "submitit_slurm"}
    assert {p.stem for p in WANDB_FILES} >= {"temperature_alpha", "loss_search"}
