"""Training and inference speed of each image model config on Fashion-MNIST-sized inputs.

    .venv/bin/python benchmarks/model_step_time.py [--models resnet20,wrn_16_2,...] [--steps 10]
        [--batch-size 128] [--threads 2]

For each ``conf/student/<name>.yaml`` (1 channel, 10 classes, random 28x28 inputs, channels-last as kd
trains CNNs): a training step (forward, cross-entropy, backward, SGD step) and an inference forward
(``eval()``, no grad) are timed; medians over ``--steps`` after 2 warm-up steps. Images per second and
the estimated seconds per Fashion-MNIST epoch (55,000 training images) plan the benchmark pairs'
budgets. Writes ``benchmarks/results/model_step_time-<cpu>.json`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

import kd  # noqa: F401  (torchvision compatibility step, before timm is imported)
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("resnet10_w8,resnet18,resnet8,resnet14,resnet20,resnet32,resnet56,resnet110,resnet8x4,resnet32x4,"
           "wrn_16_2,wrn_40_1,wrn_40_2,vgg8,vgg13,mobilenetv2,shufflev1,shufflev2")
TRAIN_IMAGES = 55_000   # Fashion-MNIST's training split less kd's validation share


def timed(step, steps: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch_size: int, steps: int) -> dict:
    cfg = OmegaConf.load(ROOT / "conf/student" / f"{name}.yaml")
    cfg.net.in_chans, cfg.net.num_classes = 1, 10
    torch.manual_seed(0)
    net = instantiate(cfg.net).to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 1, 28, 28).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def infer_step() -> None:
        with torch.no_grad():
            net(x)

    net.train()
    train_s = timed(train_step, steps)
    net.eval()
    infer_s = timed(infer_step, steps)
    return {
        "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 4),
        "train_images_per_s": round(batch_size / train_s, 1),
        "infer_images_per_s": round(batch_size / infer_s, 1),
        "train_epoch_s": round(TRAIN_IMAGES / (batch_size / train_s), 1),
        "teacher_epoch_s": round(TRAIN_IMAGES / (batch_size / infer_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    print(f"{'model':<12} {'M params':>9} {'train img/s':>12} {'infer img/s':>12} {'s/epoch':>8} {'teacher s/epoch':>16}")
    for name in args.models.split(","):
        rows[name] = row = measure(name, args.batch_size, args.steps)
        print(f"{name:<12} {row['params_m']:>9.3f} {row['train_images_per_s']:>12.0f} "
              f"{row['infer_images_per_s']:>12.0f} {row['train_epoch_s']:>8.0f} {row['teacher_epoch_s']:>16.0f}")
    info = machine()
    out = ROOT / "benchmarks/results" / f"model_step_time-{info['cpu_short']}.json"
    settings = {"batch_size": args.batch_size, "steps": args.steps, "threads": args.threads, "input": [1, 28, 28],
                "channels_last": True, "precision": "float32"}
    out.write_text(json.dumps({"machine": info, "settings": settings, "models": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
