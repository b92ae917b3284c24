"""Answers to chat prompts and their quality: batched generation (prompts left-padded, each answer cut
at the end-of-turn token), ROUGE-L (Google's ``rouge-score``, as the MiniLLM and DistiLLM evaluations)
against the reference response and against the teacher's answer, exact match where answers are
checkable (one right answer per prompt), and the mean answer length."""

from __future__ import annotations

import logging
import re
import statistics
import string
import sys
from typing import Any, cast

import torch
from torch import nn

from kd.taps import model_device
from kd.utils.progress import Progress


@torch.no_grad()
def answer_prompts(
    model: nn.Module, prompts: list[list[int]], max_new_tokens: int, stop: int, pad: int,
    temperature: float = 0.0, top_p: float = 1.0,
) -> list[list[int]]:
    """``model``'s answer to each prompt (token ids, in one left-padded batch), without the end-of-turn
    token ``stop`` and what follows it; greedy at ``temperature`` 0, else sampled (nucleus ``top_p``)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.as_tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    ids, mask = ids.to(model_device(model)), mask.to(model_device(model))
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {"do_sample": False}
    was_training = model.training
    model.eval()
    try:
        out = cast(Any, model).generate(  # a Hugging Face model; nn.Module types attributes as Tensor | Module
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, eos_token_id=stop, pad_token_id=pad,
            **sampling,
        )
    finally:
        model.train(was_training)
    answers = []
    for row in out[:, width:].cpu().tolist():
        answers.append(row[: row.index(stop)] if stop in row else row)
    return answers


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure (0-100) of ``predictions`` against ``references`` (Porter stemming)."""
    from absl import logging as absl_logging  # rouge-score's logging
    from rouge_score import rouge_scorer  # imported when scored, not with kd

    logging.getLogger("absl").setLevel(logging.WARNING)  # its "Using default tokenizer." at every scorer
    # absl's handler keeps the sys.stderr of the moment it was imported and closes it when logging is
    # reconfigured (Hydra's next job), unless it is the process's own stderr: give it that one
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
    return 100 * statistics.fmean(scores) if scores else 0.0


def normalise_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share (0-100) of ``predictions`` equal to their reference once both are normalised."""
    hits = [normalise_answer(p) == normalise_answer(r) for p, r in zip(predictions, references, strict=True)]
    return 100 * statistics.fmean(hits) if hits else 0.0


def stop_and_pad(tokenizer: Any) -> tuple[int, int]:
    """The end-of-turn token (``eos_token_id``) and the padding token (the end-of-turn token if none)."""
    stop = tokenizer.eos_token_id
    return stop, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop


def answer_all(model: nn.Module, prompts: list[list[int]], max_new_tokens: int, tokenizer: Any, batch_size: int,
               role: str) -> list[list[int]]:
    """Greedy answers to every prompt, ``batch_size`` at a time, with progress."""
    progress = Progress(len(prompts), f"{role} answers to test prompts", every=10.0)
    answers: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        answers += answer_prompts(model, prompts[start : start + batch_size], max_new_tokens, *stop_and_pad(tokenizer))
        progress.update(len(answers))
    progress.close()
    return answers


def answer_quality(
    datamodule: Any, models: dict[str, nn.Module | None], count: int, max_new_tokens: int, checkable: bool = False,
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Greedy answers of each model to the first ``count`` test prompts, scored: ``test/{prefix}rougeL_ref``
    (against the data's response), ``test/rougeL_teacher`` (the student against the teacher's answer),
    ``test/{prefix}answer_tokens`` (mean length) and, for ``checkable`` answers, ``test/{prefix}exact_match``;
    and a row per prompt (prompt, reference, each answer)."""
    tokenizer = datamodule.tokenizer
    prompts = datamodule.openings["test"][:count]
    references = datamodule.responses["test"][:count]
    rows = [{"prompt": text, "reference": ref} for text, ref in zip(datamodule.prompts["test"], references, strict=False)]
    metrics: dict[str, float] = {}
    for role, model in models.items():
        if model is None:
            continue
        ids = answer_all(model, prompts, max_new_tokens, tokenizer, datamodule.eval_batch_size, role)
        texts = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
        prefix = "teacher_" if role == "teacher" else ""
        metrics[f"test/{prefix}rougeL_ref"] = round(rouge_l(texts, references), 2)
        metrics[f"test/{prefix}answer_tokens"] = round(statistics.fmean(len(row) for row in ids), 1)
        if checkable:
            metrics[f"test/{prefix}exact_match"] = round(exact_match(texts, references), 2)
        for row, text in zip(rows, texts, strict=True):
            row[role] = text
    if "teacher" in rows[0] and "student" in rows[0]:
        metrics["test/rougeL_teacher"] = round(rouge_l([r["student"] for r in rows], [r["teacher"] for r in rows]), 2)
    return metrics, rows
