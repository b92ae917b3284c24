"""sweeps/benchmark_pairs_table.py: cells are the seeds' mean ± std of test accuracy per pair and method."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from tests.paths import REPO

ROOT = REPO


def load_table_script():
    spec = importlib.util.spec_from_file_location("pairs_table", ROOT / "sweeps" / "benchmark_pairs_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(folder: Path, teacher: str, student: str, loss: str, seed: int, acc: float | None) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss={loss}", f"seed={seed}"]))
    config = {"teacher": {"name": teacher}, "student": {"name": student}, "seed": seed,
              "hydra_choices": {"loss": loss, "student": student, "teacher": teacher}}
    (folder / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    if acc is None:
        (folder / "failed.json").write_text(json.dumps({"error_type": "RunError", "error": "x", "overrides": []}))
    else:
        (folder / "metrics.json").write_text(json.dumps({"test/acc": acc, "val/acc_best": acc}))


def parse(text: str) -> dict[str, list[str]]:
    """Row label -> its cells, from the markdown table's body."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]
    return {row[0].strip("*"): row[1:] for row in rows}


def test_cells_are_mean_and_std_over_seeds_beside_the_published_numbers(tmp_path: Path) -> None:
    root = tmp_path / "benchmark_pairs"
    (root / "teachers" / "resnet56").mkdir(parents=True)
    (root / "teachers" / "resnet56" / "metrics.json").write_text(json.dumps({"test/acc": 0.9123}))
    for seed, acc in enumerate([0.80, 0.82, 0.84]):
        fake_run(root / "resnet56-resnet20" / str(seed), "resnet56", "resnet20", "kd", seed, acc)
    fake_run(root / "resnet56-resnet20" / "3", "resnet56", "resnet20", "ce", 0, 0.79)
    fake_run(root / "resnet56-resnet20" / "4", "resnet56", "resnet20", "ce", 1, None)  # failed: not counted
    text = load_table_script().table(root, seeds=3)
    rows = parse(text)
    assert list(rows) == ["Teacher", "Student (vanilla)", "KD"]  # only methods that ran
    assert rows["Teacher"][:2] == ["91.23", "72.34"]
    assert rows["KD"][:2] == ["82.00 ± 2.00", "70.66"]
    assert rows["Student (vanilla)"][0] == "79.00 ± 0.00 (n=1)"  # one of three seeds finished
    assert "resnet56 → resnet20 | CIFAR-100 (paper)" in text.splitlines()[0]


def test_pairs_keep_the_published_tables_order_and_unknown_pairs_show_dashes(tmp_path: Path) -> None:
    root = tmp_path / "benchmark_pairs"
    fake_run(root / "a" / "0", "vgg13", "vgg8", "at", 0, 0.5)
    fake_run(root / "b" / "0", "resnet56", "resnet20", "at", 0, 0.6)
    fake_run(root / "c" / "0", "resnet20", "resnet8", "at", 0, 0.7)
    text = load_table_script().table(root, seeds=1)
    header, rows = text.splitlines()[0], parse(text)
    assert header.index("resnet56 → resnet20") < header.index("vgg13 → vgg8") < header.index("resnet20 → resnet8")
    assert rows["AT"] == ["60.00 ± 0.00", "70.55", "50.00 ± 0.00", "71.43", "70.00 ± 0.00", "–"]
    assert rows["Teacher"] == ["–", "72.34", "–", "74.64", "–", "–"]  # no teacher folders here
