"""What an exported model is worth: agreement with PyTorch, accuracy, size and CPU latency."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kd.export.onnx_model import onnx_files, run, session
from kd.taps import Inputs, call_model


def accuracy_and_difference(
    predict: Callable[[Inputs], np.ndarray], reference: nn.Module, batches: list[dict[str, Any]]
) -> dict[str, float]:
    """Accuracy of ``predict`` on ``batches`` (next-token accuracy over labelled positions for language
    models, which also get ``perplexity``), its largest absolute logit difference from ``reference``, and
    ``reference_accuracy`` (the same batches through ``reference``, from the same forward passes)."""
    hits, ref_hits, count, worst, nll = 0, 0, 0, 0.0, 0.0
    with torch.inference_mode():
        for batch in batches:
            logits = predict(batch["inputs"])
            expected = call_model(reference, batch["inputs"]).float().numpy()
            worst = max(worst, float(np.abs(logits - expected).max()))
            labels = batch["labels"]
            valid = labels != -100
            hits += int(torch.from_numpy(logits.argmax(-1) == labels.numpy())[valid].sum())
            ref_hits += int(torch.from_numpy(expected.argmax(-1) == labels.numpy())[valid].sum())
            count += int(valid.sum())
            if labels.dim() > 1:  # per-position labels: a language model
                flat = torch.from_numpy(logits).float().reshape(-1, logits.shape[-1])
                nll += float(F.cross_entropy(flat, labels.reshape(-1), ignore_index=-100, reduction="sum"))
    out = {"accuracy": hits / max(count, 1), "reference_accuracy": ref_hits / max(count, 1), "max_abs_logit_diff": worst}
    if batches and batches[0]["labels"].dim() > 1:
        out["perplexity"] = math.exp(nll / max(count, 1))
    return out


def ms_per_token(step: Callable[[Inputs], np.ndarray], prompt: torch.Tensor, new_tokens: int = 32) -> float:
    """Median ms per token of greedy generation by ``step`` (logits of a whole sequence; no cache) from
    ``prompt`` (1, L): the same loop for onnxruntime and PyTorch."""
    times, ids = [], prompt
    for i in range(new_tokens + 2):
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        start = time.perf_counter()
        logits = step(inputs)
        if i >= 2:  # after two warm-up tokens
            times.append(time.perf_counter() - start)
        ids = torch.cat([ids, torch.as_tensor(logits[:, -1].argmax(-1)).reshape(1, 1)], dim=1)
    return round(1000 * statistics.median(times), 3)


def median_ms(call: Callable[..., Any], repeats: int = 20, warmup: int = 3, seconds: float = math.inf,
              least: int = 3) -> tuple[float, int]:
    """Median wall time in ms of ``call()``, and the number of timed runs: after up to ``warmup`` calls
    (one, when a call takes a second or more), ``repeats`` runs, or fewer once the timed runs took
    ``seconds`` in all and at least ``least`` were timed (a language model's batch of 64 takes seconds
    a run)."""
    for _ in range(warmup):
        start = time.perf_counter()
        call()
        if time.perf_counter() - start >= 1.0:
            break
    times: list[float] = []
    while len(times) < repeats and not (len(times) >= min(least, repeats) and sum(times) >= seconds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3), len(times)


def rows(inputs: Inputs, size: int) -> Inputs:
    """``size`` samples made of a batch's inputs (repeated when the batch has fewer)."""
    if isinstance(inputs, Mapping):
        return {name: cast(torch.Tensor, rows(tensor, size)) for name, tensor in inputs.items()}
    return inputs.repeat((size + len(inputs) - 1) // len(inputs), *([1] * (inputs.dim() - 1)))[:size]


@dataclass
class Latencies:
    """Median ms by engine, batch size and thread count (``ort_b1_t1``, ``torch_b64_t2``), and the
    number of timed runs behind each."""

    ms: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)


def latencies(onnx_path: Path | None, model: nn.Module | None, inputs: Inputs, repeats: int = 20,
              seconds: float = math.inf, batch_sizes: tuple[int, ...] = (1, 64), threads: tuple[int, ...] = (1, 2),
              label: str = "") -> Latencies:
    """``onnxruntime`` (and PyTorch eager, for ``model``) latency by batch size and thread count, each
    from up to ``repeats`` timed runs (fewer past ``seconds``: :func:`median_ms`). With ``label``, a line
    says what is being timed."""
    out = Latencies()
    before = torch.get_num_threads()
    for count in threads:
        sess = session(onnx_path, count) if onnx_path else None
        torch.set_num_threads(count)
        for size in batch_sizes:
            if label:
                print(f"[kd] export: timing {label}, batch {size}, {count} thread(s)", flush=True)
            x = rows(inputs, size)
            if sess is not None:
                key = f"ort_b{size}_t{count}"
                out.ms[key], out.runs[key] = median_ms(lambda sess=sess, x=x: run(sess, x), repeats, seconds=seconds)
            if model is not None:
                key = f"torch_b{size}_t{count}"
                with torch.inference_mode():
                    out.ms[key], out.runs[key] = median_ms(lambda x=x: call_model(model, x), repeats, seconds=seconds)
    torch.set_num_threads(before)
    return out


def size_mb(path: Path) -> float:
    """MB on disk of a file; of an ONNX file with its external-data files."""
    files = onnx_files(path) if path.suffix == ".onnx" else [path]
    return round(sum(f.stat().st_size for f in files) / 1e6, 3)
