"""Deployment cost of a model: parameters, size on disk and measured CPU inference latency."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def size_on_disk_mb(model: nn.Module) -> float:
    """Size of the model's saved ``state_dict`` in MB (10^6 bytes)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


def latency_ms(forward: Callable[[Any], Any], inputs: Any, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time in ms of ``forward(inputs)`` under ``torch.inference_mode`` (after warm-up)."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            forward(inputs)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def like_parameters(inputs: Any, model: nn.Module) -> Any:
    """Floating-point ``inputs`` (tensor or dict of tensors) cast to ``model``'s parameter dtype (64-true, bf16-true)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if isinstance(inputs, dict):
        return {k: like_parameters(v, model) for k, v in inputs.items()}
    if dtype is None or not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        return inputs
    return inputs.to(dtype)


def first_batch(batch: dict[str, Any], size: int) -> Any:
    """The first ``size`` inputs of a data-loader batch (tensor or dict of tensors)."""
    inputs = batch["inputs"]
    if isinstance(inputs, dict):
        return {k: v[:size] for k, v in inputs.items()}
    return inputs[:size]
