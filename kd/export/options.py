"""The command-line options of ``python -m kd.export``, and those a run's kind leaves unused."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kd.export.gguf_file import GGUF_DTYPES
from kd.export.onnx_model import QUANTISATIONS

# Options that apply to one kind of run only: (the kind, whether it is the language models).
ONE_KIND_ONLY = {"max_accuracy_drop": ("classifiers", False), "max_perplexity_rise": ("language models", True),
                 "gguf_dtype": ("language models", True)}
INT8_ONLY = ("max_accuracy_drop", "max_perplexity_rise")


def at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a number (an int where ``low`` is one) of at least ``low``; anything else is refused
    with the option's name before any file is written."""
    kind = int if isinstance(low, int) else float

    def parse_value(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low}; give {low} or more")
        return value

    return parse_value


def build_parser() -> argparse.ArgumentParser:
    """kd.export's options, with their defaults and help."""
    parser = argparse.ArgumentParser(
        prog="python -m kd.export",
        description="Export a finished run's student (and teacher) to ONNX, check it against PyTorch, optionally "
                    "quantise it to INT8 and time it; a language model also to a Hugging Face folder and GGUF.")
    parser.add_argument("run", type=Path, help="the folder of a finished run (holds metrics.json)")
    parser.add_argument("--quantize", choices=("auto", *QUANTISATIONS), default="auto",
                        help="INT8 student: auto (static for images, dynamic for text and LMs), static (calibrated "
                             "activations), dynamic, none")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01,
                        help="classifiers: refuse an INT8 student whose test accuracy falls by more (default 0.01 = 1 point)")
    parser.add_argument("--max-perplexity-rise", type=float, default=0.02,
                        help="language models: refuse an INT8 student whose test perplexity rises by a larger "
                             "fraction (default 0.02 = 2 %%)")
    parser.add_argument("--parity-tolerance", type=at_least(0.0), default=0.001,
                        help="largest ONNX vs PyTorch test-accuracy difference accepted (default 0.001)")
    parser.add_argument("--calibration-batches", type=at_least(1), default=4,
                        help="validation batches for static calibration (the test split only judges)")
    parser.add_argument("--repeats", type=at_least(1), default=20, help="timed runs per latency (median; after warm-up)")
    parser.add_argument("--latency-seconds", type=at_least(0.0), default=10.0,
                        help="time each latency (engine x batch x threads) for about this long: fewer than --repeats "
                             "runs, at least 3, where one run takes seconds (a language model's batch of 64)")
    parser.add_argument("--gguf-dtype", choices=GGUF_DTYPES, default="f32",
                        help="language models: the GGUF file's matrices in f32 (exact) or f16 (half the size)")
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def unused_options(args: argparse.Namespace, language_model: bool, method: str) -> list[str]:
    """The options set away from their defaults that this export does not use, each with what it applies
    to: one kind of run (``ONE_KIND_ONLY``), static quantisation, or an INT8 student."""
    default = build_parser().get_default
    given = {dest for dest in vars(args) if getattr(args, dest) != default(dest)}
    found = [f"--{dest.replace('_', '-')} applies to {kind}" for dest, (kind, for_lm) in ONE_KIND_ONLY.items()
             if dest in given and for_lm != language_model]
    if "calibration_batches" in given and method != "static":
        found.append(f"--calibration-batches applies to static quantisation (this export: {method})")
    if method == "none":
        found += [f"--{dest.replace('_', '-')} judges the INT8 student, which --quantize none leaves out"
                  for dest in INT8_ONLY if dest in given and not any(f.startswith(f"--{dest.replace('_', '-')} ") for f in found)]
    return found


