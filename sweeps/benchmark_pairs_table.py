"""The reproduction table of docs/results.md from the runs of ``sweeps/benchmark_pairs.sh``.

``python sweeps/benchmark_pairs_table.py [outputs/benchmark_pairs]`` prints one markdown table in the
RepDistiller layout (methods as rows, teacher -> student pairs as columns): test accuracy (%, the
checkpoint of the best ``val/acc``) as mean ± sample std over seeds, the run count where it is not
3, and the published CIFAR-100 top-1 beside each pair for orientation (different data set: compare
the ranking, not the values). Teachers are read from ``<root>/teachers/<name>/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from kd.report.runs import find_runs, mean_std, select

METHODS = {"teacher": "Teacher", "ce": "Student (vanilla)", "kd": "KD", "feature": "FitNet", "at": "AT",
           "crd": "CRD", "dkd": "DKD"}
# CIFAR-100 top-1 (%) as published: CRD paper (Tian et al., ICLR 2020) Tables 1-2 / RepDistiller
# README for teacher, vanilla student, KD, FitNet, AT, CRD; mdistiller README for DKD.
PUBLISHED = {
    ("resnet56", "resnet20"): {"teacher": 72.34, "ce": 69.06, "kd": 70.66, "feature": 69.21, "at": 70.55,
                               "crd": 71.16, "dkd": 71.97},
    ("resnet110", "resnet32"): {"teacher": 74.31, "ce": 71.14, "kd": 73.08, "feature": 71.06, "at": 72.31,
                                "crd": 73.48, "dkd": 74.11},
    ("resnet32x4", "resnet8x4"): {"teacher": 79.42, "ce": 72.50, "kd": 73.33, "feature": 73.50, "at": 73.44,
                                  "crd": 75.51, "dkd": 76.32},
    ("wrn_40_2", "wrn_16_2"): {"teacher": 75.61, "ce": 73.26, "kd": 74.92, "feature": 73.58, "at": 74.08,
                               "crd": 75.48, "dkd": 76.23},
    ("wrn_40_2", "wrn_40_1"): {"teacher": 75.61, "ce": 71.98, "kd": 73.54, "feature": 72.24, "at": 72.77,
                               "crd": 74.14, "dkd": 74.81},
    ("vgg13", "vgg8"): {"teacher": 74.64, "ce": 70.36, "kd": 72.98, "feature": 71.02, "at": 71.43,
                        "crd": 73.94, "dkd": 74.68},
    ("vgg13", "mobilenetv2"): {"teacher": 74.64, "ce": 64.60, "kd": 67.37, "feature": 64.14, "at": 59.40,
                               "crd": 69.73, "dkd": 69.71},
}


def collect(root: Path) -> tuple[dict[tuple[str, str], dict[str, list[float]]], dict[str, float]]:
    """Test accuracies (%) by (teacher, student) pair and method, and each teacher's own."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in find_runs([root]):
        if not run.metrics or run.metrics.get("test/acc") is None:
            continue
        pair = (select(run.config, "teacher.name"), select(run.config, "student.name"))
        method = select(run.config, "hydra_choices.loss")
        cells[pair][method].append(100 * run.metrics["test/acc"])
    teachers = {}
    for metrics in sorted((root / "teachers").glob("*/metrics.json")):
        teachers[metrics.parent.name] = 100 * json.loads(metrics.read_text())["test/acc"]
    return cells, teachers


def cell(values: list[float], seeds: int) -> str:
    """``mean ± std`` of the values, with ``(n=k)`` when not every seed ran."""
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}" + ("" if len(values) == seeds else f" (n={len(values)})")


def table(root: Path, seeds: int = 3) -> str:
    """The markdown table for the pairs found under ``root``."""
    cells, teachers = collect(root)
    pairs = sorted(cells, key=lambda p: list(PUBLISHED).index(p) if p in PUBLISHED else len(PUBLISHED))
    methods = [m for m in METHODS if m == "teacher" or any(cells[p].get(m) for p in pairs)]
    head = "| | " + " | ".join(f"{t} → {s} | CIFAR-100 (paper)" for t, s in pairs) + " |"
    lines = [head, "|---|" + "---|---|" * len(pairs)]
    for method in methods:
        row = [f"**{METHODS[method]}**"]
        for pair in pairs:
            ours = f"{teachers[pair[0]]:.2f}" if method == "teacher" and pair[0] in teachers else (
                cell(cells[pair].get(method, []), seeds) if method != "teacher" else "–")
            published = PUBLISHED.get(pair, {}).get(method)
            row += [ours, "–" if published is None else f"{published:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="outputs/benchmark_pairs", type=Path)
    parser.add_argument("--seeds", type=int, default=3, help="runs per cell expected (marks short cells)")
    args = parser.parse_args()
    print(table(args.root, args.seeds))


if __name__ == "__main__":
    main()
