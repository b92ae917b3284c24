"""Plots for ``kd.report``: accuracy vs temperature per alpha, by loss type, and vs student cost."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file-only backend

from kd.report.runs import Run, mean_std


def _select(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _teacher_line(ax: Any, runs: list[Run]) -> None:
    teacher = [r.metrics["test/teacher_acc"] for r in runs if r.metrics.get("test/teacher_acc") is not None]
    if teacher:
        ax.axhline(100 * statistics.fmean(teacher), color="grey", linestyle="--", label="teacher")


def temperature_plot(runs: list[Run], path: Path) -> Path | None:
    """Test accuracy against ``loss.temperature``, one line per ``loss.alpha`` (needs 2+ temperatures)."""
    cells: dict[tuple[Any, float], list[float]] = defaultdict(list)
    for run in runs:
        t = _select(run.config, "loss.temperature")
        if t is not None:
            cells[(_select(run.config, "loss.alpha"), float(t))].append(100 * run.metrics["test/acc"])
    if len({t for _, t in cells}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for alpha in sorted({a for a, _ in cells}, key=str):
        points = sorted((t, *mean_std(v)) for (a, t), v in cells.items() if a == alpha)
        ts, means, stds = zip(*points, strict=True)
        ax.errorbar(ts, means, yerr=stds, marker="o", capsize=3, label=f"alpha={alpha}")
    _teacher_line(ax, runs)
    ax.set(xscale="log", xlabel="temperature", ylabel="test accuracy (%)", title="accuracy vs temperature")
    ax.set_xticks(sorted({t for _, t in cells}), labels=[f"{t:g}" for t in sorted({t for _, t in cells})])
    ax.minorticks_off()
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def loss_plot(runs: list[Run], path: Path) -> Path | None:
    """Mean test accuracy per loss config with std error bars."""
    by_loss: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        by_loss[str(_select(run.config, "hydra_choices.loss") or "?")].append(100 * run.metrics["test/acc"])
    if not by_loss:
        return None
    names = sorted(by_loss)
    stats = [mean_std(by_loss[n]) for n in names]
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 4))
    ax.bar(names, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4, color="tab:blue")
    low = min(m - s for m, s in stats)
    ax.set_ylim(max(0, low - 2), 100)
    _teacher_line(ax, runs)
    ax.set(xlabel="loss", ylabel="test accuracy (%)", title="accuracy by loss (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cost_plot(runs: list[Run], path: Path) -> Path | None:
    """Test accuracy against parameters and CPU latency: students as dots, the teacher as a star."""
    if not any(r.metrics.get("student/params") for r in runs):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, cost, label in ((axes[0], "params", "parameters (M)"), (axes[1], "latency_ms", "CPU latency per batch (ms)")):
        scale = 1e6 if cost == "params" else 1.0
        for role, marker, acc_key in (("student", "o", "test/acc"), ("teacher", "*", "test/teacher_acc")):
            pairs = [(r.metrics[f"{role}/{cost}"] / scale, 100 * r.metrics[acc_key]) for r in runs
                     if r.metrics.get(f"{role}/{cost}") and r.metrics.get(acc_key) is not None]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                ax.scatter(xs, ys, marker=marker, s=120 if marker == "*" else 30, label=role)
        ax.set(xlabel=label, xscale="log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    fig.suptitle("accuracy vs size and speed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(runs: list[Run], out: Path) -> list[Path]:
    """Every plot the runs support, as PNG files in ``out``."""
    makers = (("report_temperature.png", temperature_plot), ("report_loss.png", loss_plot),
              ("report_cost.png", cost_plot))
    written = [maker(runs, out / name) for name, maker in makers]
    return [p for p in written if p is not None]
