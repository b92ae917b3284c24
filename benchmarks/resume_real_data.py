"""Kill-and-resume on real data: the default KD job on Fashion-MNIST, SIGKILLed mid-epoch, resumed.

    .venv/bin/python benchmarks/resume_real_data.py [--epochs 2] [--threads 2]

Runs resnet18 -> resnet10_w8 (augmented batches, teacher live on them) for ``--epochs`` epochs
uninterrupted; runs it again and SIGKILLs it a few seconds after the first resume point of the
last epoch; resumes that run with ``resume=true``; compares the two ``metrics.json`` files (all
keys but timings and paths). Not a test (minutes of CPU): tests/jobs/test_resume.py does the same on
synthetic data. Needs the Fashion-MNIST files; the teacher is trained once (or reused) under
outputs/teachers. Writes benchmarks/results/resume_real_data-<cpu>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
NOT_COMPARED = ("time/", "student/latency_ms", "teacher/latency_ms", "best_checkpoint", "resumed_from")


def kd_run(*overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kd.run", *overrides], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def finish(proc: subprocess.Popen) -> float:
    start = time.time()
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(out[-3000:])
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    root = Path(tempfile.mkdtemp(prefix="kd-resume-"))
    common = ["data=fashion_mnist", f"trainer.max_epochs={args.epochs}", "logger=csv", "progress_bar=false", f"threads={args.threads}",
              f"paths.teacher_weights_dir={ROOT / 'outputs/teachers'}"]
    finish(kd_run(*common, f"paths.log_dir={root}/a", f"hydra.run.dir={root}/a/run"))

    killed = root / "b/run"
    proc = kd_run(*common, f"paths.log_dir={root}/b", f"hydra.run.dir={killed}")
    resume_point = killed / "checkpoints/resume.ckpt"
    for line in proc.stdout:
        if line.startswith(f"epoch {args.epochs - 1}/{args.epochs}"):
            last_epoch_start = time.time()
            break
    while not (resume_point.is_file() and resume_point.stat().st_mtime > last_epoch_start):
        time.sleep(0.01)
    time.sleep(3)  # train on past the resume point, as a real kill would
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(resume_point, weights_only=True)["global_step"]
    resume_seconds = finish(kd_run(*common, f"paths.log_dir={root}/b", f"hydra.run.dir={root}/b/again", "resume=true"))

    a = json.loads((root / "a/run/metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    keys = sorted(k for k in set(a) | set(b) if not k.startswith(NOT_COMPARED))
    result = {
        "machine": machine(), "epochs": args.epochs, "threads": args.threads, "killed_after_resume_point_step": step,
        "resumed_run_s": round(resume_seconds, 1),
        "compared_keys": len(keys), "differences": {k: [a.get(k), b.get(k)] for k in keys if a.get(k) != b.get(k)},
        "test_acc": [a["test/acc"], b["test/acc"]], "val_acc_best": [a["val/acc_best"], b["val/acc_best"]],
    }
    print(json.dumps(result, indent=2))
    (ROOT / f"benchmarks/results/resume_real_data-{result['machine']['cpu_short']}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
