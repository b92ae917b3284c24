"""Training-step time of every loss config against CE alone, on an image or a text teacher/student pair.

    .venv/bin/python benchmarks/loss_step_time.py [--task image|text] [--steps 20] [--batch-size N] [--threads 2]

image: the default pair (conf/train.yaml: resnet20 -> resnet10_w8) on random 28x28 inputs, fp32,
channels-last (batch 128).
text: experiment=rt_minilm (MiniLM-L6 -> 2-layer MiniLM) on the first Rotten Tomatoes training
texts, bf16 autocast as the experiment trains (batch 32).

Each step is what a training step does: student forward (and teacher forward when a term needs
it), the loss, backward, optimiser step. Prints a table and writes
``benchmarks/results/loss_step_time[_text]-<cpu>.json``. Timings are medians over ``--steps`` steps after warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose
from hydra.utils import instantiate

import kd  # noqa: F401  (torchvision compatibility step)
from kd.module import DistillModule
from kd.training import build_loss
from kd.utils.config_files import conf_root, initialize_conf
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
LOSS_OVERRIDES = {"text": {"feature": ["loss.student_layer=hidden2", "loss.teacher_layer=hidden6"]}}  # image aliases
TASKS = {  # overrides, default batch size, loss configs of the other modality are skipped
    "image": (["data=fashion_mnist"], 128, "modality: text"),
    "text": (["experiment=rt_minilm"], 32, "modality: image"),
}


def batch_for(task: str, cfg: Any, batch_size: int) -> tuple[Any, torch.Tensor, int]:
    """Inputs, labels and the training-set size the batch's indices refer to."""
    if task == "image":
        return torch.randn(batch_size, 1, 28, 28), torch.randint(0, cfg.data.num_classes, (batch_size,)), 55_000
    datamodule = instantiate(cfg.data.module)
    datamodule.setup()
    batch = datamodule.splits["train"][list(range(batch_size))]
    return batch["inputs"], batch["labels"], datamodule.train_size


def step_times(task: str, loss_name: str, batch_size: int, steps: int) -> list[float]:
    overrides, _, _ = TASKS[task]
    with initialize_conf():
        extra = LOSS_OVERRIDES.get(task, {}).get(loss_name, [])
        cfg = compose(config_name="train", overrides=[*overrides, f"loss={loss_name}", *extra])
    x, y, train_size = batch_for(task, cfg, batch_size)
    loss = build_loss(cfg.loss)
    teacher = instantiate(cfg.teacher.net) if loss.needs_teacher else None
    example = {k: v[:2] for k, v in x.items()} if isinstance(x, dict) else x[:2]
    module = DistillModule(
        student=instantiate(cfg.student.net), loss=loss, optimizer=instantiate(cfg.optim.optimizer),
        example_inputs=example, num_classes=cfg.data.num_classes, teacher=teacher,
        student_layers=cfg.student.layers, teacher_layers=cfg.teacher.layers, channels_last=cfg.channels_last,
    )
    module.train()
    loss.set_epoch(10)  # past any warm-up
    loss.bind_train_size(train_size)  # per-sample memory (crd)
    optimizer = module.optimizer_factory([p for p in module.parameters() if p.requires_grad])
    index = torch.randperm(train_size)[:batch_size]
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
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
    parser.add_argument("--task", choices=sorted(TASKS), default="image")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--losses", nargs="*", default=None, help="loss configs to time (default: all for the task)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides, default_batch, other_modality = TASKS[args.task]
    batch_size = args.batch_size or default_batch
    configs = sorted((f for f in (conf_root() / "loss").iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    names = args.losses or [p.name.removesuffix(".yaml") for p in configs
                            if p.name != "ce.yaml" and other_modality not in p.read_text()]
    results = {}
    for name in ["ce", *[n for n in names if n != "ce"]]:
        median = statistics.median(step_times(args.task, name, batch_size, args.steps))
        results[name] = {"step_ms": round(1000 * median, 2)}
    for row in results.values():
        row["x_ce"] = round(row["step_ms"] / results["ce"]["step_ms"], 2)
        if "kd" in results:
            row["x_kd"] = round(row["step_ms"] / results["kd"]["step_ms"], 2)
    print(f"{'loss':10s} {'step ms':>9s} {'x ce':>6s} {'x kd':>6s}")
    for name, row in results.items():
        print(f"{name:10s} {row['step_ms']:9.1f} {row['x_ce']:6.2f} {row.get('x_kd', float('nan')):6.2f}")
    suffix = "" if args.task == "image" else f"_{args.task}"
    info = {**machine(), "threads": args.threads}
    out = ROOT / "benchmarks" / "results" / f"loss_step_time{suffix}-{info['cpu_short']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with initialize_conf():
        cfg = compose(config_name="train", overrides=list(overrides))
    names = f"{cfg.teacher.name} -> {cfg.student.name}"
    pair = {"image": f"{names}, 28x28, channels_last, fp32",
            "text": f"{names}, Rotten Tomatoes texts (padded to the batch's longest), bf16 autocast"}
    out.write_text(json.dumps({"machine": info, "batch_size": batch_size, "steps": args.steps,
                               "pair": pair[args.task], "overrides": overrides, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
