"""Start-up of ``python -m kd.run``: a refusal, ``--help``, and process start -> first optimisation step.

    .venv/bin/python benchmarks/startup.py [--repeats 3] [--threads 2]

Runs the default KD job (the default pair on Fashion-MNIST, W&B offline) for one step,
``--repeats`` times, in three situations: teacher outputs already cached (the usual case inside a
sweep), the cache still to build, and the CE baseline (no teacher). The figure is the run's own
``time/start_to_first_step_s`` (kd.callbacks.FirstStepTime: from the kernel's process start time).
Also times, as wall time of a whole process: a refused config value (``loss.temperature=-1``, refused by
the config check before torch is imported) and ``--help``; and ``import kd.job`` (what a job imports)
alone, split by package (``python -X importtime``: the cumulative time of each package's first import,
nested ones included in their parents'). The teacher checkpoint is a randomly initialised default teacher.
Records the share of kd's modules whose bytecode was current (``make setup`` writes it) and whether
``PYTHONDONTWRITEBYTECODE`` was set. Writes benchmarks/results/startup-<cpu>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sweep_cache import random_teacher

from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]


def first_step_seconds(work: Path, name: str, overrides: list[str], threads: int, cache: str = "teacher_outputs") -> float:
    out = work / name
    cmd = [sys.executable, "-m", "kd.run", *overrides, "++trainer.max_steps=1", "++trainer.limit_val_batches=0",
           "++trainer.limit_test_batches=1", f"threads={threads}", f"hydra.run.dir={out}",
           "teacher_outputs.cache=true",  # whole splits, as a full run reads them (auto would leave val, test live)
           f"paths.teacher_outputs_dir={work / cache}"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["time/start_to_first_step_s"]


def wall_seconds(args: list[str], status: int = 0) -> float:
    """Wall time of ``python <args>`` as a whole process, which must exit with ``status``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True)
    assert done.returncode == status, done.stderr[-2000:]
    return time.perf_counter() - start


IMPORT_PARTS = ("torch", "lightning", "torchmetrics.functional", "torchmetrics.functional.text", "transformers",
                "torchmetrics.functional.image", "torchvision", "wandb", "hydra", "timm", "kd")


def import_breakdown() -> dict[str, float]:
    """Seconds each package in IMPORT_PARTS takes when ``import kd.job`` first imports it."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import kd.job"], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    seconds = {}
    for line in done.stderr.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() in IMPORT_PARTS and fields[1].strip().isdigit():
            seconds.setdefault(fields[2].strip(), round(int(fields[1]) / 1e6, 2))
    return seconds


def kd_bytecode_share() -> float:
    """Share of kd's modules with bytecode as new as their source (``make setup`` writes it; without it,
    where ``PYTHONDONTWRITEBYTECODE`` is set, every start compiles kd again)."""
    sources = list((ROOT / "kd").rglob("*.py"))
    current = [
        src for src in sources
        if (pyc := Path(importlib.util.cache_from_source(str(src)))).is_file() and pyc.stat().st_mtime >= src.stat().st_mtime
    ]
    return round(len(current) / len(sources), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kd-startup-"))
    teacher = random_teacher(work / "teacher.pt")
    kd_job = ["data=fashion_mnist", "loss=kd", f"teacher.ckpt={teacher}", "data.module.augment=false"]
    results: dict[str, list[float]] = {"refusal": [], "help": [], "import_kd_job": [], "kd_cache_cold": [],
                                       "kd_cache_warm": [], "ce": []}
    first_step_seconds(work, "prime", kd_job, args.threads)  # fills the shared cache the warm runs read
    for i in range(args.repeats):
        results["refusal"].append(wall_seconds(["-m", "kd.run", "loss=kd", "loss.temperature=-1",
                                                f"paths.log_dir={work}"], status=2))
        results["help"].append(wall_seconds(["-m", "kd.run", "--help"]))
        results["import_kd_job"].append(wall_seconds(["-c", "import kd.job"]))
        results["kd_cache_cold"].append(first_step_seconds(work, f"cold{i}", kd_job, args.threads, f"cache{i}"))
        results["kd_cache_warm"].append(first_step_seconds(work, f"warm{i}", kd_job, args.threads))
        results["ce"].append(first_step_seconds(work, f"ce{i}", ["data=fashion_mnist", "loss=ce"], args.threads))
        print({k: round(v[-1], 2) for k, v in results.items()}, flush=True)
    report = {
        "machine": {**machine(), "threads": args.threads},
        "kd_bytecode_share": kd_bytecode_share(),
        "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "import_breakdown_s": import_breakdown(),
        "median_s": {k: round(statistics.median(v), 2) for k, v in results.items()},
        "runs_s": {k: [round(x, 2) for x in v] for k, v in results.items()},
    }
    print(json.dumps({**report["median_s"], "imports": report["import_breakdown_s"]}, indent=2))
    path = ROOT / "benchmarks" / "results" / f"startup-{report['machine']['cpu_short']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
