"""The trade-off view of ``kd.report``: quality (test accuracy, or test perplexity for language models)
against size and CPU latency, with the teacher, students distilled with a teacher, students trained
from scratch and INT8 students as distinct points, and the Pareto front (no other point both better
and cheaper) marked. One figure per task: ``report_tradeoff.png`` and ``report_lm_tradeoff.png``.

Every finished run is a point. Latency is never mixed across runtimes: one panel has every run's own
PyTorch figures (``metrics.json``: per batch of 64, or ms per generated token), another the exported
models' onnxruntime figures (``deploy.json`` of ``kd.export``: batch 64 on 2 threads, or ms per token
with the KV cache), drawn when some run was exported. Size is the ONNX file where a run was exported,
else the saved state dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file-only backend

from kd.report.runs import Run
from kd.task import Task

KINDS = {  # kind -> (legend label, marker, colour)
    "teacher": ("teacher", "*", "tab:grey"),
    "distilled": ("student, distilled", "o", "tab:blue"),
    "scratch": ("student, from scratch", "s", "tab:orange"),
    "int8": ("student INT8 (distilled or not)", "^", "tab:green"),
}
ONNX_LATENCY = "ort_b64_t2"


@dataclass(frozen=True)
class Point:
    """One model of one run: its kind (``KINDS``), size, latency, quality and the runtime that timed it."""

    run: Path
    kind: str
    size_mb: float
    latency: float
    quality: float  # test accuracy in %, or test perplexity
    runtime: str  # "pytorch" (the run's figures) or "onnxruntime" (kd.export's)


def _student_kind(run: Run) -> str:
    return "distilled" if (run.metrics or {}).get("job_type") == "distill" else "scratch"


def run_points(run: Run, task: Task) -> list[Point]:
    """The run's student and teacher as ``metrics.json`` measured them (PyTorch)."""
    m, out = run.metrics or {}, []
    for role, kind, quality in (("student", _student_kind(run), task.headline), ("teacher", "teacher", task.teacher_metric)):
        size, latency = m.get(f"{role}/size_mb"), m.get(f"{role}/{task.latency}")
        if size and latency and m.get(quality) is not None:
            out.append(Point(run.path, kind, size, latency, task.scale * m[quality], "pytorch"))
    return out


def export_points(run: Run, task: Task, deploy: dict[str, Any]) -> list[Point]:
    """The run's exported models (``deploy.json``), INT8 refusals left out."""
    out = []
    for name, model in deploy.get("models", {}).items():
        if model.get("refused"):
            continue
        kind = {"teacher": "teacher", "student_int8": "int8"}.get(name, _student_kind(run))
        if task.language_model:
            latency, quality = model.get("ms_per_token_ort_kv") or model.get("ms_per_token_ort"), model.get("test/ppl")
        else:
            latency, quality = model.get("latency_ms", {}).get(ONNX_LATENCY), model.get("test/acc")
        if latency and quality is not None:
            quality = quality if task.language_model else 100 * quality
            out.append(Point(run.path, kind, model["size_mb"], latency, quality, "onnxruntime"))
    return out


def points(runs: list[Run], task: Task) -> list[Point]:
    """Every point of ``task``'s finished runs: PyTorch points for every run, onnxruntime points for the
    exported ones."""
    out: list[Point] = []
    for run in (r for r in runs if r.metrics and r.task.name == task.name):
        out += run_points(run, task)
        if (deployed := run.path / "deploy.json").is_file():
            out += export_points(run, task, json.loads(deployed.read_text()))
    return out


def pareto_front(pairs: list[tuple[float, float]], lower_is_better: bool = False) -> list[tuple[float, float]]:
    """The (cost, quality) pairs no other pair beats on both (lower cost and better quality), by cost."""
    sign = -1.0 if lower_is_better else 1.0
    front, best = [], float("-inf")
    for cost, quality in sorted(pairs, key=lambda p: (p[0], -sign * p[1])):
        if sign * quality > best:
            front.append((cost, quality))
            best = sign * quality
    return front


def panels(found: list[Point], task: Task) -> list[tuple[str, list[tuple[str, float, float]]]]:
    """(x label, [(kind, cost, quality)]) of each panel: size, PyTorch latency, onnxruntime latency."""
    exported = [p for p in found if p.runtime == "onnxruntime"]
    exported_runs = {p.run for p in exported}  # their size: the exported files; other runs' the state dict
    size = [(p.kind, p.size_mb, p.quality) for p in found if p.runtime == "onnxruntime" or p.run not in exported_runs]
    unit = "ms per generated token" if task.language_model else "ms per batch of 64"
    out = [("size on disk (MB)", size),
           (f"CPU latency, PyTorch ({unit})", [(p.kind, p.latency, p.quality) for p in found if p.runtime == "pytorch"])]
    if exported:
        label = "onnxruntime, KV cache" if task.language_model else "onnxruntime, 2 threads"
        out.append((f"CPU latency, {label} ({unit})", [(p.kind, p.latency, p.quality) for p in exported]))
    return out


def tradeoff_plot(runs: list[Run], path: Path, task: Task) -> Path | None:
    """Quality against size and latency (log scales) for ``task``'s runs, Pareto fronts as steps."""
    found = points(runs, task)
    if len(found) < 2:
        return None
    shown = panels(found, task)
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4.2), sharey=True, squeeze=False)
    lower = task.language_model
    for ax, (label, pts) in zip(axes[0], shown, strict=True):
        for kind, (name, marker, colour) in KINDS.items():
            mine = [(cost, quality) for k, cost, quality in pts if k == kind]
            if mine:
                xs, ys = zip(*mine, strict=True)
                ax.scatter(xs, ys, marker=marker, color=colour, s=140 if marker == "*" else 40, label=name, zorder=3)
        if pts:
            xs, ys = zip(*pareto_front([(c, q) for _, c, q in pts], lower), strict=True)
            ax.step(xs, ys, where="post", color="black", linewidth=1, alpha=0.6, zorder=2)
            ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="black", label="Pareto front", zorder=4)
        ax.set(xlabel=label, xscale="log")
    axes[0][0].set_ylabel(f"{task.label} ({'lower' if lower else 'higher'} is better)")
    if lower:
        axes[0][0].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{task.label.split(' (')[0]} vs size and speed: every run; exported models timed by onnxruntime")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
