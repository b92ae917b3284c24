"""Run folders as ``kd.report`` reads them: overrides, resolved config, metrics or failure record."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.progress import track

from kd.jobs.records import FAILURE_FILE

IGNORED_OVERRIDES = ("seed=", "paths.", "threads=", "progress_bar=", "hydra.")  # not part of a configuration
CONFIG_GROUPS = ("data", "teacher", "student", "loss", "optim", "trainer", "experiment")


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
        the value overrides, apart from seeds, paths and thread counts."""
        choices = self.config.get("hydra_choices") or {}
        chosen = {f"{group}={choices[group]}" for group in CONFIG_GROUPS if choices.get(group)}
        values = {o for o in self.overrides if "=" in o and "." in o.split("=")[0].lstrip("+~")}
        return chosen | {o for o in values if not o.startswith(IGNORED_OVERRIDES)}


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run folder below ``roots`` (one holding ``metrics.json`` or ``failed.json``)."""
    found = {p.parent for root in roots for name in ("metrics.json", FAILURE_FILE) for p in root.rglob(name)}
    folders = sorted(f for f in found if f.name != "teachers" and "teachers" not in f.parts)
    runs = []
    for folder in track(folders, description="reading runs", transient=True):
        failed = _read_json(folder / FAILURE_FILE)
        overrides = _read_yaml(folder / ".hydra" / "overrides.yaml") or (failed or {}).get("overrides") or []
        runs.append(Run(
            path=folder, overrides=list(overrides), config=_read_yaml(folder / "config_resolved.yaml") or {},
            metrics=None if failed else _read_json(folder / "metrics.json"),
            error=f"{failed['error_type']}: {failed['error']}" if failed else None,
        ))
    return runs
