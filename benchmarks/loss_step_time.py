"""Training-step time of every loss config against CE alone, on the default teacher/student pair.

    .venv/bin/python benchmarks/loss_step_time.py [--steps 20] [--batch-size 128] [--threads 2]

Each step is what a training step does: student forward (and teacher forward when a term needs
it), the loss, backward, optimiser step. Prints a table and writes
``benchmarks/results/loss_step_time.json``. Timings are medians over ``--steps`` steps after warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import kd  # noqa: F401  (torchvision compatibility step)
from kd.module import DistillModule
from kd.training import build_loss

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZE = 55_000


def step_times(loss_name: str, batch_size: int, steps: int) -> list[float]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"loss={loss_name}"])
    loss = build_loss(cfg.loss)
    teacher = instantiate(cfg.teacher.net) if loss.needs_teacher else None
    module = DistillModule(
        student=instantiate(cfg.student.net), loss=loss, optimizer=instantiate(cfg.optim.optimizer),
        example_inputs=torch.zeros(2, 1, 28, 28), num_classes=cfg.data.num_classes, teacher=teacher,
        student_layers=cfg.student.layers, teacher_layers=cfg.teacher.layers, channels_last=cfg.channels_last,
    )
    module.train()
    loss.set_epoch(10)  # past any warm-up
    loss.bind_train_size(TRAIN_SIZE)  # per-sample memory (crd) sized as for Fashion-MNIST
    optimizer = module.optimizer_factory([p for p in module.parameters() if p.requires_grad])
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, cfg.data.num_classes, (batch_size,))
    index = torch.randperm(TRAIN_SIZE)[:batch_size]
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        student_out, teacher_out = module._forward(x, index)
        total, _ = loss(student_out, teacher_out, y)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = sorted((ROOT / "conf" / "loss").glob("*.yaml"))
    names = [p.stem for p in configs if p.stem != "ce" and "modality: text" not in p.read_text()]  # image pair
    results = {}
    for name in ["ce", *names]:
        median = statistics.median(step_times(name, args.batch_size, args.steps))
        results[name] = {"step_ms": round(1000 * median, 2)}
    for name, row in results.items():
        row["x_ce"] = round(row["step_ms"] / results["ce"]["step_ms"], 2)
        row["x_kd"] = round(row["step_ms"] / results["kd"]["step_ms"], 2)
    print(f"{'loss':8s} {'step ms':>9s} {'x ce':>6s} {'x kd':>6s}")
    for name, row in results.items():
        print(f"{name:8s} {row['step_ms']:9.1f} {row['x_ce']:6.2f} {row['x_kd']:6.2f}")
    out = ROOT / "benchmarks" / "results" / "loss_step_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    out.write_text(json.dumps({"machine": machine, "batch_size": args.batch_size, "steps": args.steps,
                               "pair": "resnet18 -> resnet10_w8, 28x28, channels_last, fp32",
                               "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
