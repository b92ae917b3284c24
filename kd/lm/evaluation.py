"""What a language-model run reports besides its step metrics: bits per byte, generations from fixed
prompts (the openings of held-out documents) for teacher and student side by side, generation
latency (ms per token at batch 1, greedy, the deployed setting) and, for prompt/response data, the
quality of the answers to held-out prompts (``kd.lm.answers``)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from kd.errors import ConfigError
from kd.lm.answers import answer_quality


def bits_per_byte(ppl: float, bytes_per_token: float) -> float:
    """Bits per UTF-8 byte of text from a per-token perplexity: ``log2(ppl) / bytes_per_token``."""
    return math.log2(ppl) / bytes_per_token


def context_length(model: nn.Module) -> int | None:
    """The most positions ``model`` accepts (``config.max_position_embeddings``), if it says."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def check_generation(settings: Mapping[str, int], models: Mapping[str, nn.Module | None]) -> None:
    """A prompt plus its continuation must fit every model's context (checked before training)."""
    total = settings["prompt_tokens"] + settings["new_tokens"]
    for role, model in models.items():
        limit = context_length(model) if model is not None else None
        if limit is not None and total > limit:
            raise ConfigError(
                f"data.generation.prompt_tokens + data.generation.new_tokens = {settings['prompt_tokens']} + "
                f"{settings['new_tokens']} = {total} tokens exceed the {role}'s context of {limit} positions "
                f"(its max_position_embeddings); lower them"
            )


@torch.no_grad()
def greedy_continuations(model: nn.Module, prompts: list[list[int]], new_tokens: int) -> tuple[list[list[int]], float]:
    """Greedy continuations of ``prompts`` one at a time, and the median milliseconds per generated token."""
    was_training = model.training
    model.eval()
    outputs, ms = [], []
    try:
        for prompt in prompts:
            ids = torch.as_tensor([prompt])
            start = time.perf_counter()
            out = cast(Any, model).generate(  # a Hugging Face model; nn.Module types attributes as Tensor | Module
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new_tokens,
                eos_token_id=None, pad_token_id=getattr(model.config, "pad_token_id", None) or 0,
            )
            ms.append(1000 * (time.perf_counter() - start) / new_tokens)
            outputs.append(out[0, len(prompt) :].tolist())
    finally:
        model.train(was_training)
    return outputs, statistics.median(ms)


def generations_markdown(rows: list[dict[str, str]], latency: dict[str, float], title: str) -> str:
    """``generations.md``: each prompt, then the reference (if any) and every model's greedy text."""
    lines = [f"# {title}", ""]
    lines += [f"- {role}: {ms:.1f} ms per generated token (batch 1)" for role, ms in latency.items()]
    for i, row in enumerate(rows, 1):
        lines += ["", f"## Prompt {i}", "", *(f"> {line}" for line in row["prompt"].splitlines() or [""])]
        for role in [r for r in ("reference", "teacher", "student") if r in row]:
            lines += ["", f"**{role}**", "", "```text", row[role], "```"]
    return "\n".join(lines) + "\n"


def report_language_model(
    datamodule: Any, student: nn.Module, teacher: nn.Module | None, settings: dict[str, int],
    metrics: dict[str, Any], output_dir: Path, loggers: list[Any],
) -> dict[str, float]:
    """Bits per byte, ms per token, generations side by side (``generations.md``, a W&B table) and, for
    prompt/response data, the answers' quality (``kd.lm.answers``); returns the new metrics."""
    extra: dict[str, float] = {}
    bytes_per_token = datamodule.bytes_per_token["test"]
    for prefix in ("", "teacher_"):
        if metrics.get(f"test/{prefix}ppl"):
            extra[f"test/{prefix}bpb"] = round(bits_per_byte(metrics[f"test/{prefix}ppl"], bytes_per_token), 4)
    prompts = datamodule.generation_prompts("test", settings["prompt_tokens"])[: settings["prompts"]]
    if not prompts or settings["new_tokens"] < 1:
        return extra
    tokenizer = datamodule.tokenizer
    rows = [{"prompt": tokenizer.decode(p)} for p in prompts]
    latency = {}
    for role, model in (("teacher", teacher), ("student", student)):
        if model is None:
            continue
        continuations, latency[role] = greedy_continuations(model, prompts, settings["new_tokens"])
        for row, ids in zip(rows, continuations, strict=True):
            row[role] = tokenizer.decode(ids)
        extra[f"{role}/ms_per_token"] = round(latency[role], 2)
    title = "Generations (greedy, from held-out test prompts)"
    if settings.get("scored_prompts") and hasattr(datamodule, "responses"):  # prompt/response data: answers scored
        quality, rows = answer_quality(datamodule, {"teacher": teacher, "student": student},
                                       settings["scored_prompts"], settings["new_tokens"],
                                       checkable=bool(settings.get("exact_match", False)))
        extra.update(quality)
        title = f"Answers (greedy, to {len(rows)} held-out test prompts, scored with ROUGE-L)"
    (output_dir / "generations.md").write_text(generations_markdown(rows, latency, title))
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            columns = [c for c in ("prompt", "reference", "teacher", "student") if c in rows[0]]
            logger.log_text(key="generations", columns=columns, data=[[row[c] for c in columns] for row in rows])
    return extra
