"""A Llama language-model student as a GGUF file for llama.cpp (and transformers' GGUF loader): its
weights in f32 or f16, its shape, and the byte-level BPE tokenizer of the run's data, written with the
``gguf`` package the way llama.cpp's ``convert_hf_to_gguf.py`` writes a Llama."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from kd.errors import ConfigError
from kd.models.names import GGUF_PREFIX, gguf_source
from kd.models.text import load_tokenizer
from kd.utils.files import write_atomically

GGUF_DTYPES = ("f32", "f16")


def permute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """A q or k projection ``(heads * head_dim, d)`` with each head's rotary halves interleaved, as
    llama.cpp's rope expects (``LlamaModel.permute``; transformers' GGUF loader undoes it)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def unsupported(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as a llama GGUF, or None."""
    config: Any = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "llama":
        return f"the student {type(model).__name__} is not a Hugging Face Llama (only llama GGUF files are written)"
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        return f"its rope scaling {rope.get('rope_type')!r} is not written (only the default rope)"
    if config.attention_bias or config.mlp_bias or config.hidden_act != "silu":
        return "its attention or MLP biases, or its activation other than silu, are not a llama.cpp Llama"
    return None


def save_gguf(model: nn.Module, tokenizer: str, path: Path, dtype: str = "f32") -> dict[str, Any]:
    """Write the Llama ``model`` with ``tokenizer`` (a name kd's configs use) to ``path``: matrices in
    ``dtype`` (``f32`` or ``f16``; norms stay f32, as llama.cpp keeps them); its path and size."""
    if dtype not in GGUF_DTYPES:
        raise ConfigError(f"GGUF dtype {dtype!r}; choose one of {list(GGUF_DTYPES)}")
    if reason := unsupported(model):
        raise ConfigError(f"no GGUF file: {reason}")
    write_atomically(path, lambda tmp: write_llama(model, tokenizer, tmp, dtype))
    return {"file": str(path), "dtype": dtype, "size_mb": round(path.stat().st_size / 1e6, 3)}


def write_llama(model: nn.Module, tokenizer: str, path: Path, dtype: str) -> None:
    """The GGUF file of a Llama (see :func:`save_gguf`): llama metadata, tokenizer, tensors."""
    import gguf

    config: Any = cast(Any, model).config  # a Llama's (checked by save_gguf)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(f"kd student {type(model).__name__}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    add_tokenizer(writer, tokenizer, config.vocab_size)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads the output matrix from token_embd when output.weight is absent
        stem, _, suffix = name.rpartition(".")
        target = names.get_name(stem)
        if target is None:
            raise ConfigError(f"no GGUF file: the student's tensor {name} has no llama GGUF name")
        data = tensor.detach().to(torch.float32).numpy()
        if stem.endswith("self_attn.q_proj"):
            data = permute_rotary(data, config.num_attention_heads)
        elif stem.endswith("self_attn.k_proj"):
            data = permute_rotary(data, config.num_key_value_heads)
        writer.add_tensor(f"{target}.{suffix}", data.astype(np.float16 if dtype == "f16" and data.ndim > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def add_tokenizer(writer: Any, name: str, rows: int) -> None:
    """The byte-level BPE tokenizer ``name`` as llama.cpp's ``gpt2`` tokenizer metadata (vocabulary,
    token types, merges, special ids, chat template), padded with unused tokens to the model's ``rows``."""
    import gguf

    tokenizer = load_tokenizer(name)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise ConfigError(f"no GGUF file: the tokenizer {name} is not a byte-level BPE (only those are written)")
    tokens = {index: token for token, index in spec["model"]["vocab"].items()}
    types = dict.fromkeys(tokens, gguf.TokenType.NORMAL)
    for added in spec.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    if max(tokens) >= rows:
        raise ConfigError(f"no GGUF file: the tokenizer {name} has ids up to {max(tokens)}, the model {rows} rows")
    for index in range(rows):  # rows no token uses, as llama.cpp's converter names them
        if index not in tokens:
            tokens[index], types[index] = f"[PAD{index}]", gguf.TokenType.UNUSED
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(name, spec))
    writer.add_token_list([tokens[i] for i in range(rows)])
    writer.add_token_types([int(types[i]) for i in range(rows)])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    for token_id, add in ((tokenizer.bos_token_id, writer.add_bos_token_id), (tokenizer.eos_token_id, writer.add_eos_token_id),
                          (tokenizer.unk_token_id, writer.add_unk_token_id), (tokenizer.pad_token_id, writer.add_pad_token_id)):
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    writer.add_add_space_prefix(False)
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        writer.add_chat_template(tokenizer.chat_template)


def pre_tokenizer(name: str, spec: dict[str, Any]) -> str:
    """llama.cpp's name for how the tokenizer splits text before its merges: the source file's own for a
    tokenizer read from a GGUF, else ``gpt2`` (GPT-2's split) or ``smollm`` (digits apart, then GPT-2's)."""
    if name.startswith(GGUF_PREFIX):
        from gguf import GGUFReader

        folder, file = gguf_source(name)
        field = GGUFReader(folder / file).get_field("tokenizer.ggml.pre")
        if field is not None:
            return str(field.contents())
    steps = spec["pre_tokenizer"].get("pretokenizers", [spec["pre_tokenizer"]])
    kinds = [step["type"] for step in steps]
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    return "gpt2"
