"""``python -m kd.export <run folder> [--quantize none|dynamic|static] [--max-accuracy-drop 0.01]``

Exports the run's best student (and its teacher) to ONNX under ``<run folder>/deploy/``, checks each
file with onnxruntime against PyTorch on the run's test split, optionally quantises the student to
INT8 (static quantisation calibrated on validation batches, never on the test split it is judged
on; a classifier is gated on test accuracy, a language model on test perplexity), measures CPU
latency (onnxruntime and PyTorch eager; batch 1 and 64; 1 and 2 threads) and writes everything, with
the settings, to ``<run folder>/deploy.json``. A language-model student is also written as a Hugging
Face folder (``deploy/student_hf/``, with its tokenizer), a GGUF file for llama.cpp (``deploy/student.gguf``)
and an ONNX generator with a key-value cache (``deploy/student.with_past.onnx``, timed per generated token).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from kd.errors import ConfigError, describe_write_error
from kd.export.language_model import language_model_files
from kd.export.measure import Latencies, accuracy_and_difference, latencies, ms_per_token, rows, size_mb
from kd.export.onnx_model import export_onnx, onnx_files, quantise, run, session
from kd.export.options import parse, unused_options
from kd.export.run_folder import FinishedRun
from kd.taps import call_model
from kd.task import TASKS_BY_NAME
from kd.utils.files import remove_stale_temporaries, write_text_atomically
from kd.utils.machine import machine


def check_model(name: str, model: torch.nn.Module, folder: Path, batches: list[dict[str, Any]],
                tolerance: float, args: argparse.Namespace) -> dict[str, Any]:
    """Export ``model`` to ``folder/<name>.onnx``; parity, accuracy, size and latency of both forms."""
    print(f"[kd] export: {name} to ONNX, checked on {len(batches)} test batches", flush=True)
    path = export_onnx(model, rows(batches[0]["inputs"], 2), folder / f"{name}.onnx")
    sess = session(path)
    onnx = accuracy_and_difference(lambda x: run(sess, x), model, batches)
    torch_acc = onnx["reference_accuracy"]
    if abs(onnx["accuracy"] - torch_acc) > tolerance:
        raise ConfigError(
            f"{path}: test accuracy {onnx['accuracy']:.4f} with onnxruntime against {torch_acc:.4f} in PyTorch, "
            f"more apart than --parity-tolerance={tolerance}; the export is not faithful."
        )
    out = {"file": str(path.relative_to(folder.parent)), "size_mb": size_mb(path),
           "params": sum(p.numel() for p in model.parameters()), "test/acc": onnx["accuracy"],
           "test/acc_pytorch": torch_acc, "max_abs_logit_diff": onnx["max_abs_logit_diff"],
           **timed(latencies(path, model, batches[0]["inputs"], args.repeats, args.latency_seconds, label=name))}
    return {**out, **generation(path, model, batches, onnx)}


def timed(found: Latencies) -> dict[str, Any]:
    """A model's ``latency_ms`` and, beside it, ``latency_runs`` (timed runs behind each median)."""
    return {"latency_ms": found.ms, "latency_runs": found.runs}


def generation(path: Path, model: torch.nn.Module | None, batches: list[dict[str, Any]],
               measured: dict[str, float]) -> dict[str, float]:
    """Language models: test perplexity and greedy ms per generated token (onnxruntime; PyTorch for ``model``)."""
    if "perplexity" not in measured:
        return {}
    sess, prompt = session(path), timing_prompt(batches)
    out = {"test/ppl": measured["perplexity"], "ms_per_token_ort": ms_per_token(lambda x: run(sess, x), prompt)}
    if model is not None:
        with torch.inference_mode():
            out["ms_per_token_pytorch"] = ms_per_token(lambda x: call_model(model, x).float().numpy(), prompt)
    return out


def timing_prompt(batches: list[dict[str, Any]]) -> torch.Tensor:
    """The prompt (1, 24) greedy generation is timed from: the first test block's opening."""
    return batches[0]["inputs"]["input_ids"][:1, :24]


def export_run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``deploy.json`` holds; raises ConfigError for what cannot be exported."""
    finished = FinishedRun(args.run)
    method = finished.task.quantization if args.quantize == "auto" else args.quantize
    if unused := unused_options(args, finished.task.language_model, method):
        print(f"[kd] export: not used for this {finished.task.name} run: {'; '.join(unused)}", flush=True)
    folder = args.run / "deploy"
    folder.mkdir(exist_ok=True)
    remove_stale_temporaries(args.run)  # what a killed export left half-written
    batches = finished.batches("test")
    result: dict[str, Any] = {
        "run": str(args.run), "task": finished.task.name, "checkpoint": str(finished.checkpoint), "machine": machine(), "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "models": {}, "unused_options": unused,
    }
    student = finished.student()
    result["models"]["student"] = check_model("student", student, folder, batches, args.parity_tolerance, args)
    if finished.task.language_model:
        result["models"]["student"].update(language_model_files(
            student, finished.cfg.data.get("tokenizer"), folder, timing_prompt(batches), args.gguf_dtype))
    if (teacher := finished.teacher()) is not None:
        result["models"]["teacher"] = check_model("teacher", teacher, folder, batches, args.parity_tolerance, args)
    if method != "none":
        calibration = [b["inputs"] for b in finished.batches("val", args.calibration_batches)] if method == "static" else []
        path = quantise(folder / "student.onnx", folder / "student.int8.onnx", method, calibration)
        sess = session(path)
        measured = accuracy_and_difference(lambda x: run(sess, x), student, batches)
        drop = result["models"]["student"]["test/acc"] - measured["accuracy"]
        int8 = result["models"]["student_int8"] = {
            "file": str(path.relative_to(args.run)), "size_mb": size_mb(path), "quantization": method,
            "calibration": f"{len(calibration)} validation batches" if calibration else None,
            "test/acc": measured["accuracy"], "accuracy_drop": drop, "max_abs_logit_diff": measured["max_abs_logit_diff"],
            **timed(latencies(path, None, batches[0]["inputs"], args.repeats, args.latency_seconds, label="INT8 student")),
            **generation(path, None, batches, measured),
        }
        if refusal := int8_refusal(int8, result["models"]["student"], method, args, finished.task.language_model):
            for file in onnx_files(path):  # with its external data, if any
                file.unlink()
            int8["refused"] = True
            write(args.run, result)
            raise ConfigError(f"{refusal}; not kept (figures in {args.run / 'deploy.json'}).")
    return result


def int8_refusal(
    int8: dict[str, Any], fp32: dict[str, Any], method: str, args: argparse.Namespace, language_model: bool
) -> str | None:
    """Why the INT8 student is refused (its test perplexity rose, or its test accuracy fell, too far), or None."""
    if language_model:  # judged by perplexity
        rise = int8["test/ppl"] / fp32["test/ppl"] - 1
        int8["perplexity_rise"] = rise
        if rise > args.max_perplexity_rise:
            return (f"the {method} INT8 student's test perplexity is {int8['test/ppl']:.2f} against {fp32['test/ppl']:.2f} "
                    f"(+{100 * rise:.1f} %), more than --max-perplexity-rise={args.max_perplexity_rise}. "
                    "Try a larger --max-perplexity-rise, or --quantize none")
        return None
    if int8["accuracy_drop"] > args.max_accuracy_drop:
        return (f"the {method} INT8 student loses {100 * int8['accuracy_drop']:.2f} accuracy points on the test split, "
                f"more than --max-accuracy-drop={args.max_accuracy_drop}. "
                "Try --quantize static (calibrated) or a larger --max-accuracy-drop")
    return None


def write(run_folder: Path, result: dict[str, Any]) -> Path:
    path = run_folder / "deploy.json"
    write_text_atomically(path, json.dumps(result, indent=2) + "\n")
    return path


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"kd export: {result['run']}")
    lm = TASKS_BY_NAME[result["task"]].language_model
    quality = ("test/ppl", "ms/token", "ms/token KV") if lm else ("test/acc",)
    for column in ("model", "params", "MB", *quality, "ms b1 (1 thr)", "ms b64 (2 thr)", "max |Δlogit|"):
        table.add_column(column)
    for name, m in result["models"].items():
        params = f"{m['params'] / 1e6:.2f} M" if "params" in m else "-"
        lat = m["latency_ms"]
        kv = f"{m['ms_per_token_ort_kv']:.2f}" if "ms_per_token_ort_kv" in m else "-"
        shown = (f"{m['test/ppl']:.2f}", f"{m['ms_per_token_ort']:.2f}", kv) if lm else (f"{100 * m['test/acc']:.2f} %",)
        table.add_row(name, params, f"{m['size_mb']:.2f}", *shown, f"{lat['ort_b1_t1']:.2f}",
                      f"{lat['ort_b64_t2']:.2f}", f"{m['max_abs_logit_diff']:.2g}")
    Console(soft_wrap=True).print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        result = export_run(args)
        show(result)
        print(f"wrote {write(args.run, result)} and {args.run / 'deploy'}/")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a full disk: one paragraph, no half-written file (the same command finishes it)
        advice = "Free space and run the same command again, or export a copy of the run folder on another disk."
        if (message := describe_write_error(err, args.run / "deploy", advice)) is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
