"""The Speed tables of one CPU for ``docs/speed.md``, from the result files ``benchmarks/speed_suite.sh`` writes.

    .venv/bin/python benchmarks/speed_table.py [--cpu <cpu_short>]   # default: this machine's CPU

Reads ``benchmarks/results/<name>-<cpu_short>.json`` for step_throughput (defaults part, with and
without augmentation, and the resnet18 -> resnet10t pair), sweep_cache_augmented, startup,
teacher_precision and text_precision; a missing file leaves its table out and is named at the end.
Prints markdown: a ``###`` heading with the CPU model and flags (one section of docs/speed.md's
"Benchmarks"), then one table per measurement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PAIR = "resnet18_to_resnet10t"


def load(name: str, cpu: str, results: Path) -> dict[str, Any] | None:
    path = results / f"{name}-{cpu}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def heading(machine: dict[str, Any]) -> str:
    flags = machine["flags"]
    if flags.get("amx_tile"):
        kind = "AMX, AVX-512 with bf16"
    elif flags.get("avx512_bf16"):
        kind = "AVX-512 with bf16, no AMX"
    elif flags.get("avx512f"):
        kind = "AVX-512 without bf16, no AMX"
    else:
        kind = "AVX2, no AVX-512, no bf16 instructions"
    cpu = f"{machine['cpu'][:-1]}; {kind})" if machine["cpu"].endswith(")") else f"{machine['cpu']} ({kind})"
    return (f"### {cpu}\n\n{machine['cores']} cores, torch {machine['torch']}, "
            f"{machine.get('threads', 2)} threads, nothing else running.")


def steps_table(plain: dict[str, Any] | None, augmented: dict[str, Any] | None) -> str:
    rows = ["| training step (`benchmarks/step_throughput.py --parts defaults [--augment]`) | samples/s | ratio |",
            "|---|---|---|"]
    for result, what in ((plain, "no augmentation"), (augmented, "augmented batches")):
        if result is None:
            continue
        d = result["defaults"]
        rounds = len(d["per_round"]["kd_cached"])  # the file's top-level "rounds" is its last invocation's
        rows.append(f"| plain PyTorch KD loop: fp32, default layout, teacher live, {what} | {d['plain_loop']:.0f} | |")
        rows.append(f"| kd's defaults ({d['variant']}, teacher outputs cached), {what} | {d['kd_cached']:.0f} | "
                    f"**{d['ratio']:.2f}×** the plain loop (median of {rounds} rounds) |")
    return "\n".join(rows)


def pair_line(result: dict[str, Any]) -> str:
    d = result["defaults"]
    return (f"resnet18 teacher → timm `resnet10t` (`--set ... --name {PAIR}`): plain loop {d['plain_loop']:.0f} "
            f"samples/s, kd's defaults {d['kd_cached']:.0f} samples/s (**{d['ratio']:.2f}×**, median of "
            f"{len(d['per_round']['kd_cached'])} rounds).")


def sweep_table(result: dict[str, Any]) -> str:
    def fits(mode: str) -> str:
        seconds = [job["time/fit_s"] for job in result[mode]["jobs"].values()]
        return f"{min(seconds):.0f}-{max(seconds):.0f}"

    return "\n".join([
        f"| sweep (`benchmarks/sweep_cache.py --augmented`: 8 jobs, {result['epochs']} epochs) | wall time |",
        "|---|---|",
        f"| teacher live (`teacher_outputs.cache=false`) | {result['live']['wall_s']:.0f} s (fit {fits('live')} s per job) |",
        (f"| each epoch's views cached, computed by the first job (the default) | {result['cached']['wall_s']:.0f} s "
        f"(fit {fits('cached')} s per job) |"),
        f"| **speed-up** | **{result['speedup']:.2f}×** |",
    ])


def startup_table(result: dict[str, Any]) -> str:
    m, imports = result["median_s"], result["import_breakdown_s"]
    # results from before the job moved to kd.job timed `import kd.run`, which then imported the same
    imported, what = (m["import_kd_job"], "`import kd.job`") if "import_kd_job" in m else (m["import_kd_run"], "`import kd.run`")
    refusals = [f"| a refused config value (`loss.temperature=-1`), whole process | **{m['refusal']:.2f}** |",
                f"| `python -m kd.run --help`, whole process | {m['help']:.2f} |"] if "refusal" in m else []
    return "\n".join([
        "| start-up of `python -m kd.run` (`benchmarks/startup.py`, median) | seconds |",
        "|---|---|",
        *refusals,
        (f"| {what} (what a job imports) alone | {imported:.1f} (Lightning {imports['lightning']:.1f}, of which "
        f"torchmetrics.functional {imports['torchmetrics.functional']:.1f}; torch {imports['torch']:.1f}) |"),
        f"| KD job, teacher outputs cached | **{m['kd_cache_warm']:.1f}** |",
        f"| CE job (no teacher) | {m['ce']:.1f} |",
        f"| KD job building its cache first | {m['kd_cache_cold']:.1f} |",
    ])


def precision_lines(teacher: dict[str, Any] | None, text: dict[str, Any] | None) -> str:
    lines = []
    if teacher:
        speed, acc, agree = teacher["images_per_s"], teacher["test_acc"], teacher["bf16_vs_fp32"]
        trained = acc["fp32"] > 0.2  # a randomly initialised teacher (speed only) scores about 10 %
        quality = (f"test acc {100 * acc['bf16']:.2f} % against {100 * acc['fp32']:.2f} %; top-1 agreement "
                   f"{100 * agree['top1_agreement']:.2f} %, KL(fp32 ‖ bf16) {agree['kl_T1']:.1e} at T=1" if trained
                   else "randomly initialised teacher: speed only (TEACHER_CKPT or a trained default teacher for accuracy)")
        lines.append(f"- image teacher inference (`benchmarks/teacher_precision.py`): bf16 {speed['bf16']:.0f} "
                     f"against fp32 {speed['fp32']:.0f} images/s (**{teacher['bf16_speedup']:.2f}×**); {quality}")
    if text:
        ms, speedup, lm = text["ms_per_batch"], text["bf16_speedup"], text["smollm2_inference_ms"]
        lines.append(f"- {text['model']} (`benchmarks/text_precision.py`, batch {text['batch_size']} × "
                     f"{text['tokens']} tokens): training step bf16 {ms['train_bf16']:.0f} ms against fp32 "
                     f"{ms['train_fp32']:.0f} ms (**{speedup['train']:.2f}×** the fp32 speed), inference "
                     f"{ms['inference_bf16']:.0f} against {ms['inference_fp32']:.0f} ms ({speedup['inference']:.2f}×); "
                     f"SmolLM2-135M forward {lm['bfloat16']:.0f} ms with bfloat16 weights against "
                     f"{lm['float32']:.0f} ms in float32 ({speedup['smollm2_inference']:.2f}×)")
    return "\n".join(lines)


def render(cpu: str, results_dir: Path = RESULTS) -> str:
    """Every table this CPU's result files in ``results_dir`` allow, and a line naming the missing files."""
    names = ["step_throughput", "step_throughput_augmented", f"step_throughput_{PAIR}", "sweep_cache_augmented",
             "startup", "teacher_precision", "text_precision"]
    results = {name: load(name, cpu, results_dir) for name in names}
    found = [r for r in results.values() if r]
    if not found:
        raise SystemExit(f"no results for CPU '{cpu}' in {results_dir} (run bash benchmarks/speed_suite.sh there)")
    parts = [heading(found[0]["machine"])]
    if results["step_throughput"] or results["step_throughput_augmented"]:
        parts.append(steps_table(results["step_throughput"], results["step_throughput_augmented"]))
    if results[f"step_throughput_{PAIR}"]:
        parts.append(pair_line(results[f"step_throughput_{PAIR}"]))
    if results["sweep_cache_augmented"]:
        parts.append(sweep_table(results["sweep_cache_augmented"]))
    if results["startup"]:
        parts.append(startup_table(results["startup"]))
    if lines := precision_lines(results["teacher_precision"], results["text_precision"]):
        parts.append(lines)
    if missing := [f"{name}-{cpu}.json" for name, r in results.items() if r is None]:
        parts.append(f"Not measured on this CPU: {', '.join(missing)}.")
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", default=None, help="cpu_short of the results (default: this machine's)")
    args = parser.parse_args()
    if args.cpu is None:
        from kd.utils.machine import machine  # only when the CPU is not named: importing kd takes seconds

        args.cpu = machine()["cpu_short"]
    print(render(args.cpu), end="")


if __name__ == "__main__":
    main()

