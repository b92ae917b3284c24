"""A causal language model as an ONNX generator with a key-value cache (``<name>.with_past.onnx``), and
greedy generation with it in onnxruntime (and, the same loop, in PyTorch).

The file takes ``input_ids`` (B, S), ``attention_mask`` (B, past + S), ``position_ids`` (B, S) and
each layer's ``past_key_values.<i>.key`` / ``.value`` (B, KV heads, past, head dim; past may be 0: the
prompt's first call) and returns ``logits`` (B, S, vocabulary) and ``present.<i>.key`` / ``.value``
(the past grown by S), Optimum's names. Each generated token then runs only itself through the model.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from kd.export.onnx_model import EXTERNAL_DATA_BYTES, parameter_bytes, session, write_onnx

Step = Callable[[np.ndarray], np.ndarray]  # new token ids (1, S) -> their logits (1, S, V); keeps its own cache


def unsupported(model: nn.Module) -> str | None:
    """Why ``model`` gets no KV-cache ONNX file, or None: it must be a Hugging Face causal LM whose
    layers all attend to the full past."""
    config: Any = getattr(model, "config", None)
    if config is None or not hasattr(model, "generate") or not getattr(config, "num_key_value_heads", None):
        return f"the student {type(model).__name__} is not a Hugging Face causal LM with a key-value cache"
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
        return "its sliding-window or linear-attention layers are not exported with a cache (full attention only)"
    return None


def cache_shape(model: nn.Module) -> tuple[int, int, int]:
    """Layers, key-value heads and head size of a Hugging Face causal LM's cache."""
    config: Any = cast(Any, model).config  # a Hugging Face config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_hidden_layers, config.num_key_value_heads, head_dim


class WithPast(nn.Module):
    """``model`` called with its past keys and values as flat tensors (a transformers ``DynamicCache``
    built from them), returning its logits and the grown keys and values. Its own forward is unchanged."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.layers = model, cache_shape(model)[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(self.layers)])
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True)
        return (out.logits, *(t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)))


def cache_names(layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def export_with_past(model: nn.Module, path: Path, external_data_over: int = EXTERNAL_DATA_BYTES) -> Path:
    """Write the causal LM ``model`` to ``path`` as a generator with a key-value cache (module docstring);
    batch, new and past lengths are dynamic. Weights of more than ``external_data_over`` bytes go to
    ``<path>.data``."""
    layers, heads, head_dim = cache_shape(model)
    batch, new, past = 2, 3, 4
    ids = torch.randint(0, int(cast(Any, model).config.vocab_size), (batch, new))
    mask = torch.ones(batch, past + new, dtype=torch.long)
    positions = torch.arange(past, past + new).expand(batch, new)
    dtype = next(model.parameters()).dtype
    cache = [torch.zeros(batch, heads, past, head_dim, dtype=dtype) for _ in range(2 * layers)]
    b = torch.export.Dim("batch", min=1, max=4096)
    s = torch.export.Dim("sequence", min=1, max=8192)
    p = torch.export.Dim("past", min=0, max=8192)
    dims = ({0: b, 1: s}, {0: b, 1: torch.export.Dim.AUTO}, {0: b, 1: s}, tuple({0: b, 2: p} for _ in cache))
    inputs = ["input_ids", "attention_mask", "position_ids", *cache_names(layers, "past_key_values")]
    return write_onnx(WithPast(model), (ids, mask, positions, *cache), path, dims, inputs,
                      ["logits", *cache_names(layers, "present")], type(model).__name__,
                      parameter_bytes(model) > external_data_over)


def onnx_step(path: Path, threads: int = 1) -> Step:
    """A step of greedy generation by the with-past file ``path`` in onnxruntime, batch 1, starting from
    an empty cache."""
    sess = session(path, threads)
    past_inputs = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    dtype = np.float16 if past_inputs[0].type == "tensor(float16)" else np.float32
    past = [np.zeros((1, i.shape[1], 0, i.shape[3]), dtype) for i in past_inputs]

    def step(ids: np.ndarray) -> np.ndarray:
        nonlocal past
        done, new = past[0].shape[2], ids.shape[1]
        feed = {"input_ids": ids.astype(np.int64), "attention_mask": np.ones((1, done + new), np.int64),
                "position_ids": np.arange(done, done + new, dtype=np.int64)[None]}
        logits, *past = sess.run(None, {**feed, **{i.name: t for i, t in zip(past_inputs, past, strict=True)}})
        return logits

    return step


def torch_step(model: nn.Module) -> Step:
    """The same step in PyTorch: ``model`` with a transformers ``DynamicCache``."""
    from transformers import DynamicCache

    cache = DynamicCache()

    def step(ids: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(ids), past_key_values=cache, use_cache=True).logits.float().numpy()

    return step


def greedy(step: Step, prompt: torch.Tensor, new_tokens: int = 32) -> dict[str, Any]:
    """Greedy generation of ``new_tokens`` from ``prompt`` (1, L) by ``step``: the ``tokens``, the
    prompt's ``first_logits`` and the median ``ms_per_token`` (after two warm-up tokens, the first of
    them the prompt's own pass; as the cache-free ``measure.ms_per_token``)."""
    ids, tokens, times, first = prompt.numpy(), [], [], None
    for i in range(new_tokens + 2):
        start = time.perf_counter()
        logits = step(ids)
        if i >= 2:
            times.append(time.perf_counter() - start)
        first = logits if first is None else first
        ids = logits[:, -1:].argmax(-1).astype(np.int64)
        tokens.append(int(ids[0, 0]))
    return {"tokens": tokens[:new_tokens], "first_logits": first, "ms_per_token": round(1000 * statistics.median(times), 3)}
