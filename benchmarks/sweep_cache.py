"""Wall time of an 8-job temperature x alpha KD sweep with the shared teacher-output cache vs without.

    .venv/bin/python benchmarks/sweep_cache.py [--epochs 2] [--train-subset N] [--threads 2] [--teacher-ckpt PATH]
        [--augmented]

Each mode is one real ``python -m kd.run -m`` process (Hydra's basic launcher runs the jobs one after
another; the default W&B logger in offline mode): loss=kd with loss.temperature=1,4 and
loss.alpha=0.25,0.5,0.75,0.9 on Fashion-MNIST, the default pair (conf/train.yaml), without
augmentation, or with it (``--augmented``: the cached mode caches every epoch's augmented views,
``teacher_outputs.augmented_views=true``). ``cached`` starts from an empty cache folder, so its
time includes building the cache once. The teacher checkpoint is a randomly initialised default
teacher unless ``--teacher-ckpt`` is given (its weights do not change the timing). Also compares
each job's test accuracy between the modes. Writes
benchmarks/results/sweep_cache[_augmented]-<cpu>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import kd  # noqa: F401  (torchvision compatibility step, before timm is imported)
from kd.utils.config_files import initialize_conf
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["loss=kd", "loss.temperature=1,4", "loss.alpha=0.25,0.5,0.75,0.9"]


def random_teacher(path: Path) -> Path:
    """A randomly initialised checkpoint of the default teacher (conf/train.yaml's ``teacher``)."""
    from hydra import compose
    from hydra.utils import instantiate

    with initialize_conf():
        cfg = compose(config_name="train")
    torch.manual_seed(0)
    torch.save(instantiate(cfg.teacher.net).state_dict(), path)
    return path


def run_sweep(mode: str, work: Path, args: argparse.Namespace, teacher: Path) -> dict:
    sweep_dir = work / mode
    cmd = [
        sys.executable, "-m", "kd.run", "-m", "data=fashion_mnist", *SWEEP, f"teacher.ckpt={teacher}", f"trainer.max_epochs={args.epochs}",
        f"teacher_outputs.cache={'true' if mode == 'cached' else 'false'}", f"threads={args.threads}",
        f"data.module.augment={str(args.augmented).lower()}",
        *([f"teacher_outputs.augmented_views={str(mode == 'cached').lower()}"] if args.augmented else []),
        f"paths.teacher_outputs_dir={work / 'teacher_outputs'}", f"hydra.sweep.dir={sweep_dir}",
    ]
    if args.train_subset:
        cmd.append(f"data.module.source.train_subset={args.train_subset}")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    jobs = {}
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        config = (metrics_file.parent / ".hydra" / "overrides.yaml").read_text()
        key = ",".join(line.strip("- ") for line in config.splitlines() if "temperature" in line or "alpha" in line)
        jobs[key] = {"test/acc": metrics["test/acc"], "time/fit_s": metrics["time/fit_s"]}
    print(f"{mode}: {wall:.1f} s for {len(jobs)} jobs", flush=True)
    return {"wall_s": round(wall, 1), "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--teacher-ckpt", type=Path, default=None)
    parser.add_argument("--augmented", action="store_true", help="augmented batches; cached mode caches their views")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kd-sweep-bench-"))
    teacher = args.teacher_ckpt.resolve() if args.teacher_ckpt else random_teacher(work / "teacher.pt")
    live = run_sweep("live", work, args, teacher)
    cached = run_sweep("cached", work, args, teacher)
    diffs = [abs(live["jobs"][k]["test/acc"] - cached["jobs"][k]["test/acc"]) for k in live["jobs"]]
    report = {
        "machine": {**machine(), "threads": args.threads},
        "sweep": SWEEP, "augmented": args.augmented, "epochs": args.epochs, "train_subset": args.train_subset, "teacher": str(args.teacher_ckpt),
        "live": live, "cached": cached, "speedup": round(live["wall_s"] / cached["wall_s"], 3),
        "max_test_acc_difference": max(diffs),
    }
    print(f"speed-up with the shared cache: {report['speedup']:.2f}x "
          f"({live['wall_s']:.0f} s -> {cached['wall_s']:.0f} s); largest test/acc difference {max(diffs):.4f}")
    name = "sweep_cache_augmented" if args.augmented else "sweep_cache"
    path = ROOT / "benchmarks" / "results" / f"{name}-{report['machine']['cpu_short']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
