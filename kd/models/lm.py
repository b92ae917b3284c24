"""Causal language models for configs: a pretrained causal LM (e.g. the packaged GGUF SmolLM2, see
``kd.models.names``), the same model truncated to its first layers, and small random-init Llamas."""

from __future__ import annotations

import torch
from torch import nn

from kd.errors import ConfigError
from kd.models.text import load_pretrained, load_tokenizer, truncate_layers


def pretrained_causal_lm(name_or_path: str, num_layers: int | None = None, dtype: str = "float32") -> nn.Module:
    """A pretrained causal LM, optionally truncated to its first ``num_layers`` decoder layers.

    Args:
        name_or_path: where the weights are (see the module docstring).
        num_layers: keep only the first ``num_layers`` layers (None keeps all).
        dtype: parameter dtype (``float32`` or ``bfloat16``; a frozen teacher runs fastest in bf16).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    config = load_pretrained(AutoConfig.from_pretrained, name_or_path, "model config")
    truncate_layers(config, num_layers, name_or_path)
    return load_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "model", config=config,
                           dtype=getattr(torch, dtype))


def random_llama(
    tokenizer: str,
    hidden_size: int = 256,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 768,
    max_position_embeddings: int = 2048,
    tie_word_embeddings: bool = True,
) -> nn.Module:
    """A randomly initialised Llama on ``tokenizer``'s vocabulary (the student of a Llama teacher)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ConfigError(
            f"hidden_size={hidden_size}, num_heads={num_heads}, num_kv_heads={num_kv_heads}: hidden_size must be "
            "divisible by num_heads and num_heads by num_kv_heads"
        )
    vocab = load_tokenizer(tokenizer)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=vocab.bos_token_id, eos_token_id=vocab.eos_token_id, pad_token_id=vocab.pad_token_id,
    )
    return LlamaForCausalLM(config)
