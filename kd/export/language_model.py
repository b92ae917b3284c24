"""The files only a language-model student gets, besides ``student.onnx``: a Hugging Face folder, a GGUF
file for llama.cpp and an ONNX generator with a key-value cache (timed against the cache-free loop). A
student one of them does not fit is skipped with the reason in ``deploy.json``, never refused."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kd.errors import ConfigError
from kd.export import gguf_file, onnx_generator
from kd.export.hugging_face import save_hugging_face
from kd.export.measure import size_mb


def language_model_files(model: nn.Module, tokenizer: str | None, folder: Path, prompt: torch.Tensor,
                         gguf_dtype: str = "f32", new_tokens: int = 32) -> dict[str, Any]:
    """``hugging_face``, ``gguf`` and ``with_past`` entries for the student's ``deploy.json`` record
    (each a file or ``{"skipped": reason}``), and greedy ms per token with the cache from ``prompt`` (1, L)."""
    out: dict[str, Any] = {}
    if tokenizer:
        out["hugging_face"] = attempt("Hugging Face folder", lambda: save_hugging_face(model, tokenizer, folder / "student_hf"))
        out["gguf"] = attempt("GGUF file", lambda: gguf_file.save_gguf(model, tokenizer, folder / "student.gguf", gguf_dtype))
        if "file" in out["gguf"]:
            out["gguf"]["file"] = str(Path(out["gguf"]["file"]).relative_to(folder.parent))  # as the ONNX files
    else:
        out["gguf"] = {"skipped": "the run's data names no tokenizer to write into the file"}
    if reason := onnx_generator.unsupported(model):
        out["with_past"] = {"skipped": reason}
        return out
    out["with_past"] = attempt("ONNX generator with a KV cache",
                               lambda: with_past(model, folder / "student.with_past.onnx", prompt, new_tokens))
    if "ms_per_token" in out["with_past"]:
        out["ms_per_token_ort_kv"] = out["with_past"].pop("ms_per_token")
        out["ms_per_token_pytorch_kv"] = out["with_past"].pop("ms_per_token_pytorch")
    return out


def with_past(model: nn.Module, path: Path, prompt: torch.Tensor, new_tokens: int) -> dict[str, Any]:
    """Export the generator, generate greedily from ``prompt`` with it in onnxruntime and with the model in
    PyTorch (both cached): agreement and ms per token."""
    onnx_generator.export_with_past(model, path)
    onnx = onnx_generator.greedy(onnx_generator.onnx_step(path), prompt, new_tokens)
    reference = onnx_generator.greedy(onnx_generator.torch_step(model), prompt, new_tokens)
    return {"file": str(path.relative_to(path.parent.parent)), "size_mb": size_mb(path),
            "same_greedy_tokens": onnx["tokens"] == reference["tokens"],
            "max_abs_logit_diff": float(np.abs(onnx["first_logits"] - reference["first_logits"]).max()),
            "ms_per_token": onnx["ms_per_token"], "ms_per_token_pytorch": reference["ms_per_token"]}


def attempt(what: str, write: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``write()``'s record, or ``{"skipped": reason}`` (also printed) when it raises a ConfigError."""
    try:
        return write()
    except ConfigError as err:
        print(f"[kd] export: no {what}: {err}", file=sys.stderr)
        return {"skipped": str(err)}
