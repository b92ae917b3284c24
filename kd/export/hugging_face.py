"""A language-model student as a Hugging Face folder: ``save_pretrained`` (config and safetensors) with
the tokenizer the run's data used, so ``AutoModelForCausalLM.from_pretrained(folder)`` and
``AutoTokenizer.from_pretrained(folder)`` load it anywhere transformers runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from torch import nn

from kd.errors import ConfigError
from kd.models.text import load_tokenizer


def save_hugging_face(model: nn.Module, tokenizer: str, folder: Path) -> dict[str, Any]:
    """Write ``model`` and ``tokenizer`` (a name kd's configs use) to ``folder``; its path and size."""
    if not hasattr(model, "save_pretrained"):
        raise ConfigError(f"the student {type(model).__name__} is not a Hugging Face model; no Hugging Face folder")
    folder.mkdir(parents=True, exist_ok=True)
    cast(Any, model).save_pretrained(folder, safe_serialization=True)  # a Hugging Face model
    load_tokenizer(tokenizer).save_pretrained(folder)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return {"folder": str(folder), "size_mb": round(size / 2**20, 3)}
