"""Run folders as ``kd.report`` reads them: overrides, resolved config, metrics or failure record, each
run's task (``kd.task``: what it is judged by), and which way each metric is better."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.progress import track

from kd.config.identities import enters
from kd.config.rules import JOB_FILE, RUN_NAME
from kd.jobs.job_record import FAILURE_FILE, record_key
from kd.task import Task, lower_is_better, task_of_record

CONFIG_GROUPS = ("data", "teacher", "student", "loss", "optim", "trainer", "experiment")
def arrow(metric: str) -> str:
    """``↓`` for a metric where lower is better, ``↑`` otherwise."""
    return "↓" if lower_is_better(metric) else "↑"


def best_of(metric: str, values: Mapping[str, float]) -> str | None:
    """The key of the best value of ``metric`` (smallest or largest, by its direction); None when
    ``values`` is empty or the best value is shared (a tie names no winner)."""
    if not values:
        return None
    pick = min if lower_is_better(metric) else max
    winner = pick(values, key=lambda k: values[k])
    return None if list(values.values()).count(values[winner]) > 1 else winner


def select(config: Mapping[str, Any], dotted: str) -> Any:
    """``config``'s value at ``a.b.c``, or None where a key is missing."""
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Run:
    """One job's folder, overrides, resolved config and metrics (None when it failed)."""

    path: Path
    overrides: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    error: str | None = None

    @property
    def settings(self) -> set[str]:
        """What defines the configuration: the chosen config-group options (defaults included) and
        the dotted value overrides that enter a run's name (not paths: ``kd.config.schema``)."""
        choices = self.config.get("hydra_choices") or {}
        chosen = {f"{group}={choices[group]}" for group in CONFIG_GROUPS if choices.get(group)}
        values = {o for o in self.overrides if "=" in o and "." in o.split("=")[0].lstrip("+~")}
        named = {o for o in values if enters(o.split("=")[0].lstrip("+~"), RUN_NAME)}
        return chosen | {o for o in named if not o.startswith("hydra.")}

    @property
    def task(self) -> Task:
        """What the run predicted (``kd.task``): classification or language model."""
        return task_of_record(self.config, self.metrics)


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _job_key(folder: Path, failed: dict[str, Any] | None = None) -> str | None:
    """The job's key: from its ``job.json``, else from its failure record (a job can fail before its record)."""
    try:
        return record_key(json.loads((folder / JOB_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no record, or an unreadable one
        return (failed or {}).get("job_key")


def _read_record(path: Path) -> dict[str, Any] | None:
    """A JSON record, or None where there is none or it was cut short (a kill, a full disk)."""
    try:
        found = _read_json(path)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run folder below ``roots`` (one holding ``metrics.json`` or ``failed.json``). A job that
    ``resume=true`` skipped holds a copy of the finished run's metrics; it is left out when that run is
    below ``roots`` too. So is a failed attempt of a job (its ``job.json`` key) that a later run
    under ``roots`` finished: the job did not fail."""
    found = {p.parent for root in roots for name in ("metrics.json", FAILURE_FILE) for p in root.rglob(name)}
    folders = sorted(f for f in found if f.name != "teachers" and "teachers" not in f.parts)
    runs, resolved = [], {f.resolve() for f in folders}
    finished_at: dict[str, float] = {}  # job key -> when its latest run finished
    for folder in folders:
        if (folder / "metrics.json").is_file() and (key := _job_key(folder)):
            finished_at[key] = max(finished_at.get(key, 0.0), _mtime(folder / "metrics.json"))
    for folder in track(folders, description="reading runs", transient=True):
        failed, metrics = _read_record(folder / FAILURE_FILE), _read_record(folder / "metrics.json")
        if failed is None and (folder / FAILURE_FILE).is_file():
            failed = {"error_type": "unknown", "error": f"{FAILURE_FILE} cannot be read"}
        if failed and metrics and _mtime(folder / "metrics.json") >= _mtime(folder / FAILURE_FILE):
            failed = None  # it failed, then a resumed run finished it
        if failed and (key := _job_key(folder, failed)) and finished_at.get(key, 0.0) >= _mtime(folder / FAILURE_FILE):
            continue  # a later run of the same job finished: this attempt is history, not a failure
        metrics = None if failed else metrics
        reused = (metrics or {}).get("reused_from")
        if reused and Path(reused).resolve() in resolved:  # a job resume=true skipped: its run is counted once
            continue
        overrides = _read_yaml(folder / ".hydra" / "overrides.yaml") or (failed or {}).get("overrides") or []
        runs.append(Run(
            path=folder, overrides=list(overrides), config=_read_yaml(folder / "config_resolved.yaml") or {},
            metrics=metrics,
            error=f"{failed['error_type']}: {failed['error']}" if failed else None,
        ))
    return runs


@dataclass
class Group:
    """Runs sharing a configuration."""

    name: str
    runs: list[Run] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [r.metrics[key] for r in self.runs if r.metrics and r.metrics.get(key) is not None]

    def summary(self, key: str) -> tuple[float, float] | None:
        values = self.values(key)
        return mean_std(values) if values else None

    @property
    def task(self) -> str:
        """The task of its successful runs (of any run if none succeeded)."""
        return ([r for r in self.runs if r.metrics] or self.runs)[0].task.name


def common_settings(runs: list[Run]) -> set[str]:
    """Overrides shared by every run (they name no configuration; the report lists them once)."""
    return set.intersection(*(r.settings for r in runs)) if runs else set()


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by the overrides in which they differ (seeds excepted)."""
    common = common_settings(runs)
    groups: dict[str, Group] = {}
    for run in runs:
        name = " ".join(sorted(run.settings - common)) or "defaults"
        groups.setdefault(name, Group(name)).runs.append(run)
    return sorted(groups.values(), key=lambda g: g.name)
