"""Plots for ``kd.report``, per task (``kd.task``): the headline metric (test accuracy
for classification, test perplexity for language models) vs temperature per alpha, by loss type, and vs
student cost. Language-model plots are named ``report_lm_*.png``."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file-only backend

from kd.report.runs import Run, group_runs, mean_std, select
from kd.report.tradeoff import tradeoff_plot
from kd.task import TASKS_BY_NAME, Task, lower_is_better


def _label(task: Task) -> str:
    """``test perplexity (lower is better)``."""
    return f"{task.label} ({'lower' if lower_is_better(task.headline) else 'higher'} is better)"


def _quantity(task: Task) -> str:
    """``accuracy``, ``perplexity``: the label without split and unit."""
    return task.label.split(" (")[0].removeprefix("test ")


def _value(run: Run, key: str, task: Task) -> float | None:
    value = (run.metrics or {}).get(key)
    return None if value is None else task.scale * value


def _teacher_line(ax: Any, runs: list[Run], task: Task) -> float | None:
    """A dashed line at the teacher's mean headline metric; returns it (None without teacher metrics)."""
    teacher = [v for r in runs if (v := _value(r, task.teacher_metric, task)) is not None]
    if not teacher:
        return None
    ax.axhline(mean := statistics.fmean(teacher), color="grey", linestyle="--", label="teacher")
    return mean


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def temperature_plot(runs: list[Run], path: Path, task: Task) -> Path | None:
    """The headline metric against ``loss.temperature``, one line per ``loss.alpha`` (needs 2+ temperatures)."""
    cells: dict[tuple[Any, float], list[float]] = defaultdict(list)
    for run in runs:
        t, value = select(run.config, "loss.temperature"), _value(run, task.headline, task)
        if t is not None and value is not None:
            cells[(select(run.config, "loss.alpha"), float(t))].append(value)
    if len({t for _, t in cells}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for alpha in sorted({a for a, _ in cells}, key=str):
        points = sorted((t, *mean_std(v)) for (a, t), v in cells.items() if a == alpha)
        ts, means, stds = zip(*points, strict=True)
        ax.errorbar(ts, means, yerr=stds, marker="o", capsize=3, label=f"alpha={alpha}")
    _teacher_line(ax, runs, task)
    ax.set(xscale="log", xlabel="temperature", ylabel=_label(task), title=f"{_quantity(task)} vs temperature")
    ax.set_xticks(sorted({t for _, t in cells}), labels=[f"{t:g}" for t in sorted({t for _, t in cells})])
    ax.minorticks_off()
    ax.legend()
    return _save(fig, path)


def loss_plot(runs: list[Run], path: Path, task: Task) -> Path | None:
    """Mean headline metric per loss config with std error bars."""
    by_loss: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if (value := _value(run, task.headline, task)) is not None:
            by_loss[str(select(run.config, "hydra_choices.loss") or "?")].append(value)
    if not by_loss:
        return None
    names = sorted(by_loss)
    stats = [mean_std(by_loss[n]) for n in names]
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 4))
    ax.bar(names, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4, color="tab:blue")
    teacher = _teacher_line(ax, runs, task)
    low, high = min(m - s for m, s in stats), max(m + s for m, s in stats)
    if task.scale == 100:  # percent: up to 100
        ax.set_ylim(max(0, low - 2), 100)
    else:  # perplexity: the bars' and the teacher's range
        if teacher is not None:
            low, high = min(low, teacher), max(high, teacher)
        pad = max(0.1 * (high - low), 0.02 * abs(high), 1e-3)
        ax.set_ylim(max(0, low - pad), high + pad)
    ax.set(xlabel="loss", ylabel=_label(task), title=f"{_quantity(task)} by loss (mean ± std over seeds)")
    return _save(fig, path)


def cost_plot(runs: list[Run], path: Path, task: Task) -> Path | None:
    """The headline metric against parameters and CPU latency: students as dots, the teacher as a star."""
    if not any((r.metrics or {}).get("student/params") for r in runs):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, cost, label in ((axes[0], "params", "parameters (M)"), (axes[1], task.latency, task.latency_label)):
        scale = 1e6 if cost == "params" else 1.0
        for role, marker, key in (("student", "o", task.headline), ("teacher", "*", task.teacher_metric)):
            pairs = [(r.metrics[f"{role}/{cost}"] / scale, _value(r, key, task)) for r in runs
                     if r.metrics and r.metrics.get(f"{role}/{cost}") and r.metrics.get(key) is not None]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                ax.scatter(xs, ys, marker=marker, s=120 if marker == "*" else 30, label=role)
        ax.set(xlabel=label, xscale="log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel(_label(task))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend()
    fig.suptitle(f"{_quantity(task)} vs size and speed")
    return _save(fig, path)


def answers_plot(runs: list[Run], path: Path, task: Task) -> Path | None:
    """Prompt/response runs: ROUGE-L of the answers against the teacher's and against the reference, by
    generation latency; one marker per configuration (as the report's table groups them), a dot per seed."""
    scored = [r for r in runs if r.metrics and r.metrics.get("test/rougeL_teacher") is not None]
    if not scored:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, key in ((axes[0], "test/rougeL_teacher"), (axes[1], "test/rougeL_ref")):
        for group in group_runs(scored):
            pairs = [(m["student/ms_per_token"], m[key]) for r in group.runs
                     if (m := r.metrics or {}).get("student/ms_per_token") and m.get(key) is not None]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                ax.scatter(xs, ys, s=30, label=group.name)
        ax.set(xlabel=task.latency_label, ylabel=f"ROUGE-L vs {key.split('_')[-1].replace('ref', 'reference')} (higher is better)")
    axes[0].legend(fontsize=7)
    fig.suptitle("answer quality vs generation speed (students)")
    return _save(fig, path)


def write_plots(runs: list[Run], out: Path) -> list[Path]:
    """Every plot the runs support, per task, as PNG files in ``out``."""
    makers = (("temperature.png", temperature_plot), ("loss.png", loss_plot), ("cost.png", cost_plot),
              ("answers.png", answers_plot))
    written = []
    for task in TASKS_BY_NAME.values():
        mine = [r for r in runs if r.task.name == task.name]
        written += [maker(mine, out / f"{task.plot_prefix}{name}", task) for name, maker in makers] if mine else []
        written.append(tradeoff_plot(mine, out / f"{task.plot_prefix}tradeoff.png", task) if mine else None)
    return [p for p in written if p is not None]
