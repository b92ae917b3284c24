"""Wall time of one 4-job sweep under each local launcher, and of one job in one vs two processes.

    .venv/bin/python benchmarks/scale_out.py [--modes basic,joblib,submitit_local,single,ddp]
        [--epochs 2] [--train-subset N] [--teacher-ckpt PATH] [--out PATH]

Sweep modes: ``loss=kd loss.temperature=1,2,4,8`` on Fashion-MNIST (the default pair, no
augmentation, the teacher's outputs cached once before the timing starts), each one real
``python -m kd.run -m`` process:

* ``basic``: Hydra's basic launcher, the jobs one after another, each with every core (``threads`` null);
* ``joblib``: ``+sweep=joblib``, 2 jobs at a time, ``threads=1`` each;
* ``submitit_local``: ``+sweep=submitit_local``, every job its own process at once, ``threads=1``.

Process modes: the same job (``loss.temperature=4``) alone, as ``single`` (one process, every core)
and ``ddp`` (``trainer=ddp``: two processes, one thread each, the same global batch).

The teacher is a randomly initialised default teacher unless ``--teacher-ckpt`` is given (its weights do not
change the timing). Records each job's test accuracy and fit time and the CPU model; writes
``benchmarks/results/scale_out-<cpu>.json``.
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

from sweep_cache import random_teacher

import kd  # noqa: F401  (torchvision compatibility step, before timm is imported)
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["loss=kd", "loss.temperature=1,2,4,8", "data.module.augment=false"]
MODES = {
    "basic": ["-m", *SWEEP],
    "joblib": ["-m", "+sweep=joblib", *SWEEP],
    "submitit_local": ["-m", "+sweep=submitit_local", "hydra.launcher.cpus_per_task=1", *SWEEP],
    "single": ["loss=kd", "loss.temperature=4", "data.module.augment=false"],
    "ddp": ["loss=kd", "loss.temperature=4", "data.module.augment=false", "trainer=ddp"],
}


def kd_run(args: list[str], work: Path, folder: str, common: list[str]) -> float:
    where = f"hydra.sweep.dir={work / folder}" if "-m" in args else f"hydra.run.dir={work / folder}"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kd.run", *args, *common, where], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def jobs_of(folder: Path) -> dict[str, dict[str, float]]:
    out = {}
    for metrics_file in sorted(folder.rglob("metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        name = json.loads((metrics_file.parent / "job.json").read_text())["overrides"]
        out[",".join(o for o in name if "temperature" in o)] = {
            "test/acc": metrics["test/acc"], "time/fit_s": metrics["time/fit_s"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=0, help="0: all 55,000 training images")
    parser.add_argument("--teacher-ckpt", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    info = machine()
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"scale_out-{info['cpu_short']}.json")
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update({"machine": info, "sweep": SWEEP,
                   "epochs": args.epochs, "train_subset": args.train_subset})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        teacher = Path(args.teacher_ckpt) if args.teacher_ckpt else random_teacher(work / "teacher.ckpt")
        common = ["data=fashion_mnist", f"teacher.ckpt={teacher}", f"trainer.max_epochs={args.epochs}",
                  f"paths.teacher_outputs_dir={work / 'teacher_outputs'}", "teacher_outputs.cache=true"]
        if args.train_subset:
            common.append(f"data.module.source.train_subset={args.train_subset}")
        kd_run(MODES["single"], work, "warm-cache", [*common, "trainer=smoke"])  # builds the cache, untimed
        for mode in args.modes.split(","):
            wall = kd_run(MODES[mode], work, mode, common)
            result[mode] = {"wall_s": round(wall, 1), "jobs": jobs_of(work / mode)}
            print(f"{mode}: {wall:.1f} s", flush=True)
    if "basic" in result:
        for mode in ("joblib", "submitit_local"):
            if mode in result:
                result[f"speedup_{mode}_vs_basic"] = round(result["basic"]["wall_s"] / result[mode]["wall_s"], 2)
    if "single" in result and "ddp" in result:
        result["ddp_fit_vs_single_fit"] = round(
            next(iter(result["ddp"]["jobs"].values()))["time/fit_s"]
            / next(iter(result["single"]["jobs"].values()))["time/fit_s"], 2)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
