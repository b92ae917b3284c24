"""The comparison table of ``kd.report``: runs grouped into configurations, mean ± std over seeds.

Reads each run's own ``config_resolved.yaml``, ``metrics.json`` (or ``failed.json``) and Hydra
``overrides.yaml`` (never the W&B server). Runs whose overrides differ only in ``seed`` form one
configuration (config-group choices and value overrides; seeds apart). Writes ``report.md`` (mean ±
std over seeds, run counts, failed runs), ``report.json`` and PNG plots to ``--out`` (default: the
outputs dir).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kd.jobs.records import FAILURE_FILE
from kd.report.plots import write_plots
from kd.report.runs import Run, find_runs, mean_std

COLUMNS = ("test/acc", "val/acc_best", "test/agreement", "test/kl", "test/ece", "student/latency_ms")


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


def format_summary(summary: tuple[float, float] | None, percent: bool, digits: int = 2) -> str:
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
            cells.append(format_summary((stat["mean"], stat["std"]) if stat else None, percent, digits))
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
