"""The trade-off view of ``kd.report``: classification accuracy against size and CPU latency, with the
teacher, students distilled with a teacher, students trained from scratch and INT8 students as
distinct points, and the Pareto front (no other point both more accurate and cheaper) marked.

Costs come from one source for every point of a plot: the exported ONNX files (``deploy.json`` of
``kd.export``: file size, onnxruntime latency at batch 64 with 2 threads) when any run has been
exported, else the run's own figures (``metrics.json``: saved state dict, PyTorch latency per batch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file-only backend

from kd.report.runs import Run

KINDS = {  # kind -> (legend label, marker, colour)
    "teacher": ("teacher", "*", "tab:grey"),
    "distilled": ("student, distilled", "o", "tab:blue"),
    "scratch": ("student, from scratch", "s", "tab:orange"),
    "int8": ("student INT8 (distilled or not)", "^", "tab:green"),
}
ONNX_LATENCY = "ort_b64_t2"
Point = tuple[str, float, float, float]  # kind, size (MB), latency (ms), accuracy (%)


def _student_kind(run: Run) -> str:
    return "distilled" if (run.metrics or {}).get("job_type") == "distill" else "scratch"


def points(runs: list[Run]) -> tuple[list[Point], str]:
    """Every point of the classification runs, and where their costs come from (``onnx`` or ``pytorch``)."""
    deployed = {r.path: json.loads((r.path / "deploy.json").read_text()) for r in runs if (r.path / "deploy.json").is_file()}
    out: list[Point] = []
    if deployed:
        for run in (r for r in runs if r.path in deployed):
            for name, model in deployed[run.path]["models"].items():
                if model.get("refused"):
                    continue
                kind = {"teacher": "teacher", "student_int8": "int8"}.get(name, _student_kind(run))
                out.append((kind, model["size_mb"], model["latency_ms"][ONNX_LATENCY], 100 * model["test/acc"]))
        return out, "onnx"
    for run in runs:
        m = run.metrics or {}
        for role, kind, accuracy in (("student", _student_kind(run), "test/acc"), ("teacher", "teacher", "test/teacher_acc")):
            if m.get(f"{role}/size_mb") and m.get(f"{role}/latency_ms") and m.get(accuracy) is not None:
                out.append((kind, m[f"{role}/size_mb"], m[f"{role}/latency_ms"], 100 * m[accuracy]))
    return sorted(set(out)), "pytorch"


def pareto_front(pairs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) pairs no other pair beats on both (lower cost and higher accuracy), by cost."""
    front, best = [], float("-inf")
    for cost, accuracy in sorted(pairs, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((cost, accuracy))
            best = accuracy
    return front


def tradeoff_plot(runs: list[Run], path: Path) -> Path | None:
    """``report_tradeoff.png``: accuracy against size and latency (log scales), Pareto fronts as steps."""
    found, source = points([r for r in runs if r.metrics and not r.task.language_model])
    if len(found) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    costs: tuple[tuple[str, Literal[1, 2]], ...] = (("size on disk (MB)", 1), (f"CPU latency, batch 64 (ms, {'onnxruntime, 2 threads' if source == 'onnx' else 'PyTorch'})", 2))
    for ax, (label, column) in zip(axes, costs, strict=True):
        for kind, (name, marker, colour) in KINDS.items():
            mine = [(p[column], p[3]) for p in found if p[0] == kind]
            if mine:
                xs, ys = zip(*mine, strict=True)
                ax.scatter(xs, ys, marker=marker, color=colour, s=140 if marker == "*" else 40, label=name, zorder=3)
        front = pareto_front([(p[column], p[3]) for p in found])
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where="post", color="black", linewidth=1, alpha=0.6, zorder=2)
        ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="black", label="Pareto front", zorder=4)
        ax.set(xlabel=label, xscale="log")
    axes[0].set_ylabel("test accuracy (%) (higher is better)")
    axes[0].legend(fontsize=8)
    fig.suptitle("accuracy vs size and speed: " + ("exported models" if source == "onnx" else "runs"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
