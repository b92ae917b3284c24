"""Teacher inference in bfloat16 against float32: speed and agreement, on the trained default teacher.

    .venv/bin/python benchmarks/teacher_precision.py [--teacher-ckpt PATH] [--rounds 3] [--threads 2]

One eval-mode pass of the teacher over Fashion-MNIST's test split (10k images, batch 1000,
channels-last as kd runs it) in float32 and under bf16 autocast (what ``trainer.precision=bf16-mixed``
gives the teacher), timed alternately over ``--rounds``. Agreement of the bf16 logits with float32:
top-1 agreement, the largest absolute log-probability difference, and the mean KL(fp32 || bf16) of the
softened distributions at T=1 and T=4 (what a KD term sees). The float16 rounding of the cache's
stored logits (``teacher_outputs.dtype: float16``) is measured the same way, for scale. Without
``--teacher-ckpt`` the default experiment's teacher is used (train it first with ``python -m kd.run``).
Writes ``benchmarks/results/teacher_precision-<cpu>.json`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose
from hydra.utils import instantiate

import kd  # noqa: F401  (torchvision compatibility step, before timm is imported)
from kd.teacher.weights import load_teacher_weights, teacher_stage_config, teacher_weights_dir
from kd.utils.config_files import initialize_conf
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How far ``other`` logits are from the ``reference`` logits (both float32 here)."""
    out = {"top1_agreement": (reference.argmax(1) == other.argmax(1)).float().mean().item(),
           "max_abs_logprob_diff": (reference.log_softmax(1) - other.log_softmax(1)).abs().max().item()}
    for t in (1.0, 4.0):
        ref, oth = (reference / t).log_softmax(1), (other / t).log_softmax(1)
        out[f"kl_T{t:g}"] = F.kl_div(oth, ref, log_target=True, reduction="batchmean").item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-ckpt", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_conf():
        cfg = compose(config_name="train")
    ckpt = Path(args.teacher_ckpt or ROOT / teacher_weights_dir(teacher_stage_config(cfg)) / "teacher.ckpt")
    teacher = instantiate(cfg.teacher.net)
    load_teacher_weights(teacher, ckpt, cfg.teacher.name)
    teacher.eval().to(memory_format=torch.channels_last)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup()
    test = datamodule.splits["test"]
    batches = [test[list(range(i, min(i + 1000, len(test))))] for i in range(0, len(test), 1000)]
    inputs = [b["inputs"].contiguous(memory_format=torch.channels_last) for b in batches]
    labels = torch.cat([b["labels"] for b in batches])

    @torch.no_grad()
    def run(bf16: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return torch.cat([teacher(x).float() for x in inputs])

    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    logits: dict[str, torch.Tensor] = {}
    run(False), run(True)  # warm-up: kernel choice, caches
    for _ in range(args.rounds):
        for name in ("fp32", "bf16"):
            start = time.perf_counter()
            logits[name] = run(name == "bf16")
            seconds[name].append(time.perf_counter() - start)
    speed = {name: round(len(labels) / statistics.median(s), 1) for name, s in seconds.items()}
    result = {
        "machine": machine(), "teacher": str(ckpt), "images": len(labels), "threads": args.threads,
        "images_per_s": speed, "bf16_speedup": round(speed["bf16"] / speed["fp32"], 3),
        "test_acc": {name: (value.argmax(1) == labels).float().mean().item() for name, value in logits.items()},
        "bf16_vs_fp32": agreement(logits["fp32"], logits["bf16"]),
        "float16_storage_vs_fp32": agreement(logits["fp32"], logits["fp32"].half().float()),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / f"teacher_precision-{result['machine']['cpu_short']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
