"""Optuna studies (``+sweep=optuna``) under the report's folders: each study's best trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

RESULTS_FILE = "optimization_results.yaml"  # written by hydra-optuna-sweeper into the sweep folder


def _metric_of(study: Path) -> str | None:
    for config in sorted(study.glob("*/config_resolved.yaml")):
        metric = (yaml.safe_load(config.read_text()) or {}).get("optimized_metric")
        if metric:
            return str(metric)
    return None


def _best_trial(study: Path, metric: str | None, value: float) -> Path | None:
    for metrics_file in sorted(study.glob("*/metrics.json"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        if metric and abs(float(json.loads(metrics_file.read_text()).get(metric, float("nan"))) - value) < 1e-9:
            return metrics_file.parent
    return None


def find_studies(roots: list[Path]) -> list[dict[str, Any]]:
    """Every study under ``roots``: its folder, metric, direction, best value, best parameters and trial folder."""
    studies = []
    for results in sorted(p for root in roots for p in root.rglob(RESULTS_FILE)):
        saved = yaml.safe_load(results.read_text()) or {}
        if "best_value" not in saved:
            continue
        study, metric = results.parent, _metric_of(results.parent)
        trial = _best_trial(study, metric, float(saved["best_value"]))
        studies.append({"study": str(study), "metric": metric, "best_value": float(saved["best_value"]),
                        "best_params": saved.get("best_params", {}), "best_trial": str(trial) if trial else None})
    return studies


def studies_markdown(studies: list[dict[str, Any]]) -> str:
    """A section naming each study's best trial (accuracies in %)."""
    if not studies:
        return ""
    text = "\n## Optuna studies\n\n"
    for s in studies:
        value = s["best_value"]
        shown = f"{100 * value:.2f} %" if s["metric"] and "acc" in s["metric"] else f"{value:.4g}"
        params = " ".join(f"`{k}={v}`" for k, v in sorted(s["best_params"].items()))
        where = f" (trial folder `{s['best_trial']}`)" if s["best_trial"] else ""
        text += f"- `{s['study']}`: best `{s['metric']}` = {shown} with {params}{where}\n"
    return text
