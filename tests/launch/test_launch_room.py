"""The launch room (kd/launch): launcher and sweeper capabilities keyed by real plugin classes."""

from __future__ import annotations

import math

import pytest
from hydra.utils import get_class

from kd.errors import ConfigError
from kd.launch import launchers
from kd.launch.launchers import LAUNCHERS, SWEEPERS, LauncherCapabilities, check_launcher_starts, failed_job_value


@pytest.mark.parametrize("target", [*LAUNCHERS, *SWEEPERS])
def test_each_capability_entry_names_an_installed_plugin_class(target: str) -> None:
    assert get_class(target).__name__ == target.rsplit(".", 1)[-1]


def test_outside_hydra_the_basic_launcher_and_sweeper_apply() -> None:
    assert launchers.launcher() == ("", LauncherCapabilities())
    assert math.isnan(failed_job_value())
    check_launcher_starts(4, 4)  # the basic launcher: a job starts its own processes


def test_a_launcher_that_cannot_start_processes_refuses_a_multi_process_job(monkeypatch: pytest.MonkeyPatch) -> None:
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    monkeypatch.setattr(launchers, "_hydra_node", lambda name: {"_target_": joblib} if name == "launcher" else {})
    check_launcher_starts(1, 1)
    with pytest.raises(ConfigError, match=r"trainer.devices=2 under the launcher JoblibLauncher.*\+sweep=submitit_slurm"):
        check_launcher_starts(2, 2)


@pytest.mark.parametrize(("direction", "value"), [("minimize", math.inf), ("maximize", -math.inf)])
def test_a_failed_job_gives_a_sweeper_that_stops_at_nan_its_worst_value(
    monkeypatch: pytest.MonkeyPatch, direction: str, value: float
) -> None:
    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    node = {"_target_": optuna, "direction": direction}
    monkeypatch.setattr(launchers, "_hydra_node", lambda name: node if name == "sweeper" else {})
    assert failed_job_value() == value
