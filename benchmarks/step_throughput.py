"""Training throughput of the real config, side by side in one process: framework overhead, KD vs CE
(with and without the teacher-output cache), precision / layout / compile variants, and kd's
settings with cached teacher outputs against a plain PyTorch loop (fp32, default layout, teacher live).

    .venv/bin/python benchmarks/step_throughput.py [--steps 40] [--warmup 8] [--rounds 5] [--threads 2]
        [--parts overhead,kd_vs_ce,variants,defaults] [--variants fp32,fp32_cl,bf16,bf16_cl,bf16_cl_compile,...]
        [--set teacher=resnet18 student=... --name <result suffix>]

Default pair (conf/train.yaml) on Fashion-MNIST (``data=fashion_mnist``, the whole training split),
batch 128 (``--set`` composes another job, e.g. another pair; ``--name`` keeps its results apart), without augmentation, or with it (``--augment``: its 2-pixel shifts and flips; the cached variant then reads epoch 0's
augmented views, ``teacher_outputs.augmented_views``). The teacher is randomly initialised: weights
do not change speed.
Lightning figures come from a real ``Trainer.fit`` of ``kd.module.DistillModule`` built by
``kd.training`` (callbacks and progress output as a run has them, no logger); a callback stamps
every step. The hand loop is plain PyTorch with the same models, optimiser, scheduler, batches
and the KD formula written inline. Throughput: batch size / median step interval after ``--warmup``;
samples/s are medians over ``--rounds`` alternating rounds; each ratio is the median of the
per-round ratios (runs in one round share the machine's state). Writes benchmarks/results/step_throughput-<cpu>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra import compose
from hydra.utils import instantiate
from omegaconf import open_dict

import kd  # noqa: F401  (torchvision compatibility step: before lightning, which imports torchvision)

# isort: split
import lightning.pytorch as L

from kd.teacher.outputs import CachedTeacherOutputs, compute_teacher_outputs
from kd.teacher.views import compute_view_outputs
from kd.teacher_source import CacheEntry
from kd.training import build_loss, build_module, build_trainer, set_threads
from kd.utils.allocator import reuse_freed_memory
from kd.utils.config_files import initialize_conf
from kd.utils.machine import machine

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name: (precision, channels_last, compile)
    "fp32": ("32-true", False, False), "fp32_cl": ("32-true", True, False),
    "bf16": ("bf16-mixed", False, False), "bf16_cl": ("bf16-mixed", True, False),
    "fp32_cl_compile": ("32-true", True, True), "bf16_cl_compile": ("bf16-mixed", True, True),
}


class StepClock(L.Callback):
    """Stamps the end of every training step."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.stamps.append(time.perf_counter())


AUGMENT = {"on": False}  # --augment: data=fashion_mnist's augmented batches (set in main)
JOB: list[str] = []  # --set: Hydra overrides of the job measured (set in main)


def config(out: Path, *overrides: str) -> Any:
    augment = f"data.module.augment={str(AUGMENT['on']).lower()}"
    with initialize_conf():
        cfg = compose(config_name="train", overrides=["~logger", "data=fashion_mnist", augment, *JOB, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.progress_bar = False
        cfg.trainer.limit_val_batches = 0
        cfg.trainer.enable_checkpointing = False
        cfg.trainer.enable_model_summary = False
        del cfg.callbacks["model_checkpoint"]
    return cfg


def throughput(stamps: list[float], warmup: int, batch_size: int) -> float:
    """Samples/s from the median step interval after ``warmup`` (robust to other tenants' stalls)."""
    steady = stamps[warmup:]
    return batch_size / statistics.median(b - a for a, b in itertools.pairwise(steady))


def lightning_run(cfg: Any, datamodule: Any, nets: dict, steps: int, warmup: int, cached: dict | None) -> float:
    loss = build_loss(cfg.loss)
    teacher = copy.deepcopy(nets["teacher"]) if loss.needs_teacher else None
    student = copy.deepcopy(nets["student"])
    module = build_module(cfg, datamodule, student, loss, teacher, cached)
    if cfg.get("compile"):
        student.compile()
    with open_dict(cfg):
        cfg.trainer.max_steps = warmup + steps
    trainer = build_trainer(cfg)
    torch.manual_seed(0)  # the training loader's seed (its batches' view seeds: see teacher_outputs_for)
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    return throughput(clock.stamps, warmup, datamodule.batch_size)


def hand_loop(cfg: Any, datamodule: Any, nets: dict, steps: int, warmup: int) -> float:
    """Plain PyTorch: same models, optimiser, scheduler and batches; KD written out."""
    student, teacher = copy.deepcopy(nets["student"]).train(), copy.deepcopy(nets["teacher"]).eval()
    teacher.requires_grad_(False)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    student.to(memory_format=layout)
    teacher.to(memory_format=layout)
    optimizer = instantiate(cfg.optim.optimizer)(student.parameters())
    scheduler = instantiate(cfg.optim.scheduler)(optimizer, total_steps=warmup + steps)
    alpha, t = cfg.loss.alpha, cfg.loss.temperature
    bf16 = "bf16" in str(cfg.trainer.precision)
    stamps = []
    torch.manual_seed(0)
    for batch in datamodule.train_dataloader():
        batch = datamodule.augment_batch(batch) if datamodule.augment else batch
        x, y = batch["inputs"].contiguous(memory_format=layout), batch["labels"]
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = student(x)
            with torch.no_grad():
                teacher_logits = teacher(x)
        logits, teacher_logits = logits.float(), teacher_logits.float()
        soft = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1), log_target=True,
                        reduction="batchmean") * t * t
        loss = (1 - alpha) * F.cross_entropy(logits, y) + alpha * soft
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        stamps.append(time.perf_counter())
        if len(stamps) == warmup + steps:
            break
    return throughput(stamps, warmup, datamodule.batch_size)


def alternate(fns: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Run each zero-argument fn once per round, the order reversed every other round; samples/s per round."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in (list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]):
            results[name].append(fn())
            print(f"  {name}: {results[name][-1]:.0f} samples/s", flush=True)
    return results


def paired(results: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``a / b`` within each round (runs side by side share the machine's state)."""
    return statistics.median(x / y for x, y in zip(results[a], results[b], strict=True))


def summary(results: dict[str, list[float]], **ratios: tuple[str, str]) -> dict[str, Any]:
    """Median samples/s of each, the per-round values, and paired ratios ``name: (a, b)`` = a / b."""
    out: dict[str, Any] = {name: statistics.median(v) for name, v in results.items()}
    out["per_round"] = {name: [round(x, 1) for x in v] for name, v in results.items()}
    out.update({name: paired(results, a, b) for name, (a, b) in ratios.items()})
    return out


def build(variant: str, out: Path, *extra: str) -> tuple[Any, Any, dict]:
    precision, channels_last, compiled = VARIANTS[variant]
    cfg = config(out, f"trainer.precision={precision}", f"channels_last={channels_last}", f"compile={compiled}", *extra)
    torch.manual_seed(0)
    nets = {"teacher": instantiate(cfg.teacher.net), "student": instantiate(cfg.student.net)}
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    return cfg, datamodule, nets


def teacher_outputs_for(cfg: Any, datamodule: Any, nets: dict) -> dict[CacheEntry, CachedTeacherOutputs]:
    """The cache a run would read: epoch 0's augmented views (``--augment``), else the plain inputs."""
    if datamodule.augment:
        tensors = compute_view_outputs(
            nets["teacher"], datamodule.splits["train"], datamodule.augment_batch, batch_size=datamodule.batch_size,
            seed=0, epoch=0, num_classes=cfg.data.num_classes, precision=cfg.trainer.precision,
            channels_last=cfg.channels_last,
        )
        return {CacheEntry("train", 0): CachedTeacherOutputs(tensors, cfg.data.num_classes)}
    tensors = compute_teacher_outputs(
        nets["teacher"], datamodule.splits["train"], datamodule.eval_batch_size,
        precision=cfg.trainer.precision, channels_last=cfg.channels_last,
    )
    return {CacheEntry("train"): CachedTeacherOutputs(tensors, cfg.data.num_classes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="overhead,kd_vs_ce,variants,defaults")
    parser.add_argument("--variant", default="fp32_cl", help="variant for the overhead and kd_vs_ce parts (fp32_cl: the defaults)")
    parser.add_argument("--variants", default="fp32,fp32_cl,bf16,bf16_cl,bf16_cl_compile")
    parser.add_argument("--augment", action="store_true", help="augmented training batches (data=fashion_mnist's shifts and flips)")
    parser.add_argument("--set", nargs="*", default=[], help="Hydra overrides of the job (default: the default pair)")
    parser.add_argument("--name", default="", help="suffix of the result file, for a job changed by --set")
    parser.add_argument("--reuse-freed-memory", choices=("true", "false"), default="true",
                        help="this process keeps freed memory for the next step, as a kd job does (every part, "
                             "the plain loop included); false: glibc's defaults")
    args = parser.parse_args()
    if args.reuse_freed_memory == "true":
        reuse_freed_memory()
    AUGMENT["on"] = args.augment
    JOB.extend(args.set)
    set_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    steps, warmup, parts = args.steps, args.warmup, args.parts.split(",")
    report: dict[str, Any] = {"machine": {**machine(), "threads": args.threads}, "batch_size": 128, "steps": steps,
                              "rounds": args.rounds, "augment": args.augment, "overrides": args.set,
                              "reuse_freed_memory": args.reuse_freed_memory == "true"}
    if "overhead" in parts:
        print(f"framework overhead ({args.variant}): Lightning DistillModule vs hand-written loop, KD step")
        cfg, dm, nets = build(args.variant, out, "loss=kd")
        r = alternate({"lightning": lambda: lightning_run(cfg, dm, nets, steps, warmup, None),
                       "hand_loop": lambda: hand_loop(cfg, dm, nets, steps, warmup)}, args.rounds)
        report["overhead"] = {**summary(r, ratio=("lightning", "hand_loop")), "variant": args.variant}
    if "kd_vs_ce" in parts:
        print(f"KD vs CE-only student steps ({args.variant}), live teacher and cached teacher outputs")
        cfg, dm, nets = build(args.variant, out, "loss=kd")
        ce_cfg, _, _ = build(args.variant, out, "loss=ce")
        cached = teacher_outputs_for(cfg, dm, nets)
        r = alternate({"ce": lambda: lightning_run(ce_cfg, dm, nets, steps, warmup, None),
                       "kd_live": lambda: lightning_run(cfg, dm, nets, steps, warmup, None),
                       "kd_cached": lambda: lightning_run(cfg, dm, nets, steps, warmup, cached)}, args.rounds)
        ratios = {"step_time_ratio_live": ("ce", "kd_live"), "step_time_ratio_cached": ("ce", "kd_cached")}
        report["kd_vs_ce"] = {**summary(r, **ratios), "variant": args.variant}
    if "variants" in parts:
        print("precision / layout / compile variants, KD step (live teacher) and CE step")
        fns = {}
        for name in args.variants.split(","):
            for loss in ("kd", "ce"):
                cfg, dm, nets = build(name, out, f"loss={loss}")
                fns[f"{name}/{loss}"] = (lambda c=cfg, d=dm, n=nets: lightning_run(c, d, n, steps, warmup, None))
        r = alternate(fns, args.rounds)
        report["variants"] = {
            name: {"samples_per_s": statistics.median(v), "per_round": [round(x, 1) for x in v],
                   "speedup_vs_fp32": paired(r, name, f"fp32/{name.split('/')[1]}") if "fp32/kd" in r else None}
            for name, v in r.items()
        }
    if "defaults" in parts:
        print(f"kd's settings ({args.variant}) with cached teacher outputs vs a plain loop (fp32, contiguous, live teacher)")
        cfg, dm, nets = build(args.variant, out, "loss=kd")
        plain_cfg, _, _ = build("fp32", out, "loss=kd")
        cached = teacher_outputs_for(cfg, dm, nets)
        r = alternate({"kd_cached": lambda: lightning_run(cfg, dm, nets, steps, warmup, cached),
                       "plain_loop": lambda: hand_loop(plain_cfg, dm, nets, steps, warmup)}, args.rounds)
        report["defaults"] = {**summary(r, ratio=("kd_cached", "plain_loop")), "variant": args.variant}
    show(report)
    name = ("step_throughput_augmented" if args.augment else "step_throughput") + (f"_{args.name}" if args.name else "")
    path = ROOT / "benchmarks" / "results" / f"{name}-{report['machine']['cpu_short']}.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    kept = {k: v for k, v in earlier.items() if k in ("overhead", "kd_vs_ce", "variants", "defaults") and k not in report}
    path.write_text(json.dumps({**report, **kept}, indent=2) + "\n")  # parts not run this time are kept
    print(f"wrote {path}")


def show(report: dict[str, Any]) -> None:
    if "overhead" in report:
        o = report["overhead"]
        print(f"\noverhead: lightning {o['lightning']:.0f}/s, hand loop {o['hand_loop']:.0f}/s, ratio {o['ratio']:.3f}")
    if "kd_vs_ce" in report:
        k = report["kd_vs_ce"]
        print(f"kd vs ce: ce {k['ce']:.0f}/s, kd live {k['kd_live']:.0f}/s ({k['step_time_ratio_live']:.2f}x step time),"
              f" kd cached {k['kd_cached']:.0f}/s ({k['step_time_ratio_cached']:.2f}x)")
    if "defaults" in report:
        d = report["defaults"]
        print(f"kd cached {d['kd_cached']:.0f}/s vs plain loop {d['plain_loop']:.0f}/s: {d['ratio']:.2f}x")
    for name, v in report.get("variants", {}).items():
        speedup = f"{v['speedup_vs_fp32']:.2f}x fp32" if v["speedup_vs_fp32"] else ""
        print(f"{name:24s} {v['samples_per_s']:7.0f}/s  {speedup}")


if __name__ == "__main__":
    main()
