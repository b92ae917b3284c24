"""The comparison table of ``kd.report``: runs grouped into configurations, mean ± std over seeds.

Reads each run's own ``config_resolved.yaml``, ``metrics.json`` (or ``failed.json``) and Hydra
``overrides.yaml`` (never the W&B server). Runs whose overrides differ only in ``seed`` form one
configuration (config-group choices and value overrides; seeds apart). The columns are those of the
runs' tasks (``kd.task``: accuracy for classification, perplexity for language
models; their union for a mixed report) that at least one run has. Writes ``report.md`` (mean ± std
over seeds, run counts, the best configuration per task, failed runs), ``report.json`` and PNG plots
to ``--out`` (default: the outputs dir).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kd.jobs.job_record import FAILURE_FILE
from kd.report.plots import write_plots
from kd.report.runs import Group, Run, arrow, best_of, common_settings, find_runs, group_runs
from kd.report.studies import find_studies, studies_markdown
from kd.task import TASKS_BY_NAME, lower_is_better
from kd.utils.files import remove_stale_temporaries, write_text_atomically


def choose_columns(runs: list[Run]) -> list[str]:
    """The columns of the runs' tasks (in ``TASKS`` order, without repeats) that some run has."""
    tasks = {r.task.name for r in runs}
    wanted = dict.fromkeys(c for name, task in TASKS_BY_NAME.items() if name in tasks for c in task.columns)
    return [c for c in wanted if any(r.metrics and r.metrics.get(c) is not None for r in runs)]


def is_percent(key: str) -> bool:
    return key.endswith(("acc", "acc_best", "agreement"))


def header(key: str) -> str:
    """``test/acc (%) ↑``, ``test/ppl ↓``: unit and direction."""
    return f"{key}{' (%)' if is_percent(key) else ''} {arrow(key)}"


def format_summary(summary: tuple[float, float] | None, percent: bool, digits: int = 2) -> str:
    if summary is None:
        return "-"
    mean, std = summary
    scale = 100 if percent else 1
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def format_cell(key: str, stat: dict[str, float] | None) -> str:
    """Accuracies in %, KL and ECE with 3 decimals, the rest (perplexity, bits per byte, ms) with 2."""
    digits = 3 if key.endswith(("kl", "kl_topk", "ece")) else 2
    return format_summary((stat["mean"], stat["std"]) if stat else None, is_percent(key), digits)


def best_configurations(rows: list[dict[str, Any]], key: str) -> dict[str, str]:
    """Per task, the configuration with the best mean ``key`` (lowest or highest, by the metric's
    direction), where at least two configurations of that task have it and none ties with it."""
    best = {}
    for task in TASKS_BY_NAME:
        means = {r["configuration"]: r[key]["mean"] for r in rows if r["task"] == task and r.get(key)}
        if len(means) > 1 and (winner := best_of(key, means)):
            best[task] = winner
    return best


def table_rows(groups: list[Group], columns: list[str]) -> list[dict[str, Any]]:
    """One row per configuration: task, counts, and mean/std of every column over its successful runs."""
    rows = []
    for group in groups:
        ok = [r for r in group.runs if r.metrics]
        row: dict[str, Any] = {"configuration": group.name, "task": group.task, "runs": len(ok),
                               "failed": len(group.runs) - len(ok)}
        for key in columns:
            summary = group.summary(key)
            row[key] = None if summary is None else {"mean": summary[0], "std": summary[1], "n": len(group.values(key))}
        rows.append(row)
    return rows


def row_cells(row: dict[str, Any], columns: list[str], best: dict[str, dict[str, str]]) -> list[tuple[str, bool]]:
    """A row as text, each cell with whether it is the best of its column among its task."""
    cells = [(row["configuration"], False), (str(row["runs"]), False), (str(row["failed"]), False)]
    return cells + [(format_cell(key, row[key]), best[key].get(row["task"]) == row["configuration"]) for key in columns]


def markdown(rows: list[dict[str, Any]], failed: list[Run], common: set[str], columns: list[str]) -> str:
    head = ["configuration", "runs", "failed", *map(header, columns)]
    best = {key: best_configurations(rows, key) for key in columns}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(f"**{t}**" if top else t for t, top in row_cells(row, columns, best)) + " |")
    shared = " ".join(f"`{o}`" for o in sorted(common)) or "none"
    tasks = {row["task"] for row in rows}
    text = (f"Overrides shared by all runs: {shared}.\n\nMean ± std over seeds (sample std; 0 for one run). "
            "↓: lower is better (perplexity, bits per byte, KL, ECE, latency); ↑: higher is better "
            "(accuracy, agreement). Accuracies in %; perplexity and bits per byte as plain numbers. "
            "**Bold**: the best configuration in that column")
    if len(tasks) > 1:
        text += " among those of the same task; `test/acc` is next-token accuracy for language models"
    text += ".\n\n" + "\n".join(lines) + "\n"
    for task in sorted(tasks):
        key = TASKS_BY_NAME[task].headline
        if winner := best.get(key, {}).get(task):
            way = "lowest" if lower_is_better(key) else "highest"
            kind = "language-model" if TASKS_BY_NAME[task].language_model else "classification"
            text += f"\nBest {kind} configuration ({way} mean `{key}`): `{winner}`.\n"
    if failed:
        text += "\n## Failed runs\n\n" + "".join(f"- `{r.path}`: {r.error}\n" for r in failed)
    return text


def write_report(roots: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Read the runs under ``roots``; write report.md, report.json and plots to ``out`` (default: the
    first root); return the columns, rows, best configuration per task, failed runs and plots."""
    if missing := [f"{r}: {'a file, not a folder' if r.exists() else 'no such folder'}" for r in roots if not r.is_dir()]:
        raise SystemExit(f"error: {'; '.join(missing)}; give the folders that hold the runs "
                         "(e.g. outputs/multirun/<date>/<time>, or outputs/runs)")
    if out is not None and out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out}: a file, not a folder; give the folder for report.md, report.json "
                         "and the plots (it is made if missing)")
    runs = find_runs(roots)
    if not runs:
        raise SystemExit(f"error: no runs (metrics.json or {FAILURE_FILE}) under {', '.join(map(str, roots))}")
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # a killed report's half-written files
    columns = choose_columns(runs)
    rows = table_rows(group_runs(runs), columns)
    failed = [r for r in runs if r.metrics is None]
    studies = find_studies(roots)
    write_text_atomically(out / "report.md", markdown(rows, failed, common_settings(runs), columns) + studies_markdown(studies))
    plots = write_plots([r for r in runs if r.metrics], out)
    best = {task: {"metric": spec.headline, "configuration": winner} for task, spec in TASKS_BY_NAME.items()
            if (winner := best_configurations(rows, spec.headline).get(task))}
    result = {"columns": columns, "rows": rows, "best": best, "failed": [str(r.path) for r in failed],
              "plots": [str(p) for p in plots], "studies": studies}
    write_text_atomically(out / "report.json", json.dumps(result, indent=2) + "\n")
    return result
