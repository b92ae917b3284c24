"""Comparison report from run folders: ``python -m kd.report <outputs dir> [<dir> ...] [--out DIR]``.

Reads each run's own ``config_resolved.yaml``, ``metrics.json`` (or ``failed.json``) and Hydra
``overrides.yaml`` (never the W&B server). Runs whose overrides differ only in ``seed`` form one
configuration (config-group choices and value overrides; seeds apart). Writes ``report.md`` (mean ± std over seeds, run counts, failed runs),
``report.json`` and PNG plots to ``--out`` (default: the outputs dir).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import track
from rich.table import Table

from kd.jobs import FAILURE_FILE
from kd.report_plots import write_plots

COLUMNS = ("test/acc", "val/acc_best", "test/agreement", "test/kl", "test/ece", "student/latency_ms")
IGNORED_OVERRIDES = ("seed=", "paths.", "threads=", "progress_bar=", "hydra.")  # not part of a configuration
CONFIG_GROUPS = ("data", "teacher", "student", "loss", "optim", "trainer", "experiment")


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


@dataclass
class Group:
    """Runs sharing a configuration."""

    name: str
    runs: list[Run] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [r.metrics[key] for r in self.runs if r.metrics and r.metrics.get(key) is not None]

    def summary(self, key: str) -> tuple[float, float] | None:
        values = self.values(key)
        if not values:
            return None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


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


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


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


def _fmt(summary: tuple[float, float] | None, percent: bool, digits: int = 2) -> str:
    if summary is None:
        return "-"
    mean, std = summary
    scale = 100 if percent else 1
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def table_rows(groups: list[Group]) -> list[dict[str, Any]]:
    """One row per configuration: counts, and mean/std of every column over its successful runs."""
    rows = []
    for group in groups:
        ok = [r for r in group.runs if r.metrics]
        row: dict[str, Any] = {"configuration": group.name, "runs": len(ok), "failed": len(group.runs) - len(ok)}
        for key in COLUMNS:
            summary = group.summary(key)
            row[key] = None if summary is None else {"mean": summary[0], "std": summary[1], "n": len(group.values(key))}
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], failed: list[Run], common: set[str]) -> str:
    header = ["configuration", "runs", "failed", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["configuration"], str(row["runs"]), str(row["failed"])]
        for key in COLUMNS:
            stat = row[key]
            percent = key.endswith(("acc", "acc_best", "agreement"))
            digits = 3 if key.endswith(("kl", "ece")) else 2
            cells.append(_fmt((stat["mean"], stat["std"]) if stat else None, percent, digits))
        lines.append("| " + " | ".join(cells) + " |")
    shared = " ".join(f"`{o}`" for o in sorted(common)) or "none"
    text = (f"Overrides shared by all runs: {shared}.\n\nAccuracies in %, mean ± std over seeds "
            "(sample std; 0 for one run).\n\n" + "\n".join(lines) + "\n")
    if failed:
        text += "\n## Failed runs\n\n" + "".join(f"- `{r.path}`: {r.error}\n" for r in failed)
    return text


def write_report(roots: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Read the runs under ``roots``; write report.md, report.json and plots to ``out`` (default: the
    first root); return the rows."""
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(roots)
    if not runs:
        raise SystemExit(f"error: no runs (metrics.json or {FAILURE_FILE}) under {', '.join(map(str, roots))}")
    rows = table_rows(group_runs(runs))
    failed = [r for r in runs if r.metrics is None]
    (out / "report.md").write_text(markdown(rows, failed, common_settings(runs)))
    plots = write_plots([r for r in runs if r.metrics], out)
    result = {"rows": rows, "failed": [str(r.path) for r in failed], "plots": [str(p) for p in plots]}
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="multirun folders, or any folders holding run folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the first root)")
    args = parser.parse_args(argv)
    result = write_report(args.roots, args.out)
    table = Table(title=f"kd report: {' '.join(map(str, args.roots))}")
    for column in ("configuration", "runs", "failed", "test/acc", "val/acc_best"):
        table.add_column(column)
    for row in result["rows"]:
        acc, best = row["test/acc"], row["val/acc_best"]
        table.add_row(row["configuration"], str(row["runs"]), str(row["failed"]),
                      _fmt((acc["mean"], acc["std"]) if acc else None, True),
                      _fmt((best["mean"], best["std"]) if best else None, True))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"wrote {(args.out or args.roots[0]) / 'report.md'}, report.json and {len(result['plots'])} plot(s)")


if __name__ == "__main__":
    main()
