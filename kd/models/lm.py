"""Causal language models for configs: any pretrained Hugging Face causal LM (e.g. the packaged GGUF
SmolLM2, see ``kd.models.names``), optionally cut to some of its layers (a student cut from its teacher:
DistilBERT's every other layer, Minitron's depth pruning), and small random-init Llamas."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kd.errors import ConfigError
from kd.models.text import expected_weight_changes, load_pretrained, load_tokenizer, truncate_layers


def layers_to_keep(
    total: int, num_layers: int | None = None, every_nth_layer: int | None = None,
    keep_layers: Sequence[int] | None = None, name: str = "the model",
) -> list[int] | None:
    """The decoder layers a cut model keeps (in order), from at most one of: the first ``num_layers``,
    every ``every_nth_layer``-th layer from the first (0, n, 2n, ...), or the explicit ``keep_layers``;
    None keeps all ``total``."""
    given = {k: v for k, v in (("num_layers", num_layers), ("every_nth_layer", every_nth_layer),
                               ("keep_layers", keep_layers)) if v is not None}
    if len(given) > 1:
        raise ConfigError(
            f"net: give only one of num_layers, every_nth_layer and keep_layers and set the others to null; got {given}"
        )
    if not given:
        return None
    if num_layers is not None:
        truncate_layers(type("Layers", (), {"num_hidden_layers": total})(), num_layers, name)
        return list(range(num_layers))
    if every_nth_layer is not None:
        if not 1 <= every_nth_layer <= total:
            raise ConfigError(f"net.every_nth_layer={every_nth_layer}: {name} has {total} layers; choose 1..{total}")
        return list(range(0, total, every_nth_layer))
    assert keep_layers is not None  # the one option given
    keep = list(keep_layers)
    if not keep:
        raise ConfigError(f"net.keep_layers is empty: list the layers of {name} to keep, from 0..{total - 1}")
    if bad := [i for i in keep if not isinstance(i, int) or not 0 <= i < total]:
        raise ConfigError(f"net.keep_layers={keep}: {bad} out of range; {name} has {total} layers, 0..{total - 1}")
    if sorted(set(keep)) != keep:
        raise ConfigError(f"net.keep_layers={keep}: list each layer once, in increasing order")
    return keep


def pretrained_causal_lm(
    name_or_path: str,
    num_layers: int | None = None,
    every_nth_layer: int | None = None,
    keep_layers: Sequence[int] | None = None,
    dtype: str = "float32",
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """A pretrained causal LM, optionally cut to some of its decoder layers (embeddings, final norm and
    head kept): the first ``num_layers``, every ``every_nth_layer``-th, or the list ``keep_layers``.

    Args:
        name_or_path: where the weights are (see the module docstring).
        num_layers, every_nth_layer, keep_layers: which layers to keep (at most one; see :func:`layers_to_keep`).
        dtype: parameter dtype (``float32`` or ``bfloat16``; a frozen teacher runs fastest in bf16).
        gradient_checkpointing: recompute each layer's activations in the backward pass (less memory
            for a trained student, about a third more compute).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    config = load_pretrained(AutoConfig.from_pretrained, name_or_path, "model config")
    keep = layers_to_keep(config.num_hidden_layers, num_layers, every_nth_layer, keep_layers, name_or_path)
    first_k = keep is not None and keep == list(range(len(keep)))
    if first_k and keep is not None:  # the first k layers: load only those
        config.num_hidden_layers = len(keep)
    with expected_weight_changes() if keep is not None else contextlib.nullcontext():  # the layers left out
        model = load_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "model", config=config,
                                dtype=getattr(torch, dtype))
    if keep is not None and not first_k:
        cut_layers(model, keep)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    return model


def cut_layers(model: nn.Module, keep: list[int]) -> None:
    """Keep only the decoder layers ``keep`` of a loaded causal LM (``model.model.layers``), renumbered so
    the key-value cache of generation addresses them."""
    decoder: Any = model.model  # Hugging Face attributes (nn.Module types them as Tensor | Module)
    layers = decoder.layers
    decoder.layers = nn.ModuleList([layers[i] for i in keep])
    for new_index, layer in enumerate(decoder.layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    config: Any = model.config
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)


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
