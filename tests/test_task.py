"""The task descriptor (kd/task.py): one home for "what kind of run is this"."""

from __future__ import annotations

import json
import re

import pytest

from kd.config.migrations import upgrade_identity
from kd.errors import ConfigError
from kd.jobs.job_record import job_identity, job_key
from kd.task import MODALITIES, TASKS, TASKS_BY_NAME, task_for, task_of_config, task_of_record
from tests.conftest import CONF_DIR, MODALITY_BASES
from tests.paths import KD

# How code guessed the kind of run before the task descriptor: by metric names or the modality's value.
GUESSES = re.compile(r'"ppl" in|"test/ppl" in|== "lm"|!= "lm"|== "image"|!= "image"')


def test_every_data_config_has_a_task(make_cfg) -> None:
    for path in sorted((CONF_DIR / "data").glob("*.yaml")):
        assert task_of_config(make_cfg(f"data={path.stem}")) is TASKS[make_cfg(f"data={path.stem}").data.modality]


@pytest.mark.parametrize("modality", MODALITIES)
def test_the_checkpoint_monitor_and_sweep_metric_come_from_the_task(make_cfg, modality: str) -> None:
    cfg = make_cfg(base=[*MODALITY_BASES[modality], "trainer=smoke"])
    task = task_of_config(cfg)
    assert task is TASKS[modality]
    checkpoint = cfg.callbacks.model_checkpoint
    assert (checkpoint.monitor, checkpoint.mode) == (task.monitor, task.mode)
    assert cfg.optimized_metric == task.best_metric
    expected = ("val/ppl", "min") if modality == "lm" else ("val/acc", "max")
    assert (task.monitor, task.mode) == expected and task.language_model == (modality == "lm")


def test_the_export_quantisation_follows_the_modality() -> None:
    assert {m: TASKS[m].quantization for m in MODALITIES} == {"image": "static", "text": "dynamic", "lm": "dynamic"}


def test_an_unknown_modality_is_refused_by_key() -> None:
    with pytest.raises(ConfigError, match=r"data.modality='audio': declare one of \['image', 'text', 'lm'\]"):
        task_for("audio")


def test_a_run_folder_is_read_by_its_config_then_its_metrics_then_its_figures() -> None:
    assert task_of_record({"data": {"modality": "text"}}, {"task": "classification"}) is TASKS["text"]
    assert task_of_record({}, {"task": "lm"}) is TASKS["lm"]
    assert task_of_record(None, {"test/ppl": 30.0}) is TASKS["lm"]  # written before either existed
    assert task_of_record(None, {"test/acc": 0.9}).name == "classification"
    assert set(TASKS_BY_NAME) == {task.name for task in TASKS.values()}


def test_nothing_outside_the_task_descriptor_guesses_the_kind_of_run() -> None:
    guesses = [f"{path.relative_to(KD.parent)}:{n}: {line.strip()}" for path in sorted(KD.rglob("*.py"))
               if path.name != "task.py" for n, line in enumerate(path.read_text().splitlines(), 1)
               if GUESSES.search(line)]
    assert guesses == []


def test_the_guess_pattern_finds_a_guess() -> None:
    assert GUESSES.search('lm = "test/ppl" in metrics') and GUESSES.search('if task == "lm":')


def test_a_language_model_job_from_before_the_task_keeps_its_identity(make_cfg) -> None:
    today = job_identity(make_cfg(base=[*MODALITY_BASES["lm"], "trainer=smoke"]))
    before = json.loads(json.dumps(today))
    before["data"]["monitor"] = {"metric": "val/ppl", "mode": "min"}  # what lm data configs declared
    assert job_key(upgrade_identity(before)) == job_key(today)
