"""What an exported model is worth: agreement with PyTorch, accuracy, size and CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kd.export.onnx_model import run, session


def accuracy_and_difference(
    predict: Callable[[torch.Tensor], np.ndarray], reference: nn.Module, batches: list[dict[str, Any]]
) -> dict[str, float]:
    """Accuracy of ``predict`` on ``batches`` and its largest absolute logit difference from ``reference``."""
    hits, count, worst = 0, 0, 0.0
    with torch.inference_mode():
        for batch in batches:
            logits = predict(batch["inputs"])
            expected = reference(batch["inputs"]).float().numpy()
            worst = max(worst, float(np.abs(logits - expected).max()))
            hits += int((logits.argmax(-1) == batch["labels"].numpy()).sum())
            count += len(batch["labels"])
    return {"accuracy": hits / max(count, 1), "max_abs_logit_diff": worst}


def median_ms(call: Callable[..., Any], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time in ms of ``call()`` after ``warmup`` calls."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        call()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3)


def latencies(onnx_path: Path | None, model: nn.Module | None, inputs: torch.Tensor, repeats: int = 20,
              batch_sizes: tuple[int, ...] = (1, 64), threads: tuple[int, ...] = (1, 2)) -> dict[str, float]:
    """``onnxruntime`` (and PyTorch eager, for ``model``) latency in ms by batch size and thread count,
    e.g. ``ort_b1_t1``, ``torch_b64_t2``."""
    out = {}
    before = torch.get_num_threads()
    for count in threads:
        sess = session(onnx_path, count) if onnx_path else None
        torch.set_num_threads(count)
        for size in batch_sizes:
            x = inputs[:size].repeat((size + len(inputs) - 1) // len(inputs), 1, 1, 1)[:size]
            if sess is not None:
                out[f"ort_b{size}_t{count}"] = median_ms(lambda sess=sess, x=x: run(sess, x), repeats)
            if model is not None:
                with torch.inference_mode():
                    out[f"torch_b{size}_t{count}"] = median_ms(lambda x=x: model(x), repeats)
    torch.set_num_threads(before)
    return out


def size_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3)
