"""A teacher's distributions kept as their top k: what a top-k teacher-output cache stores per sample or
position (the top k at the loss's temperature, the mass outside them, each label's log-probability at
T=1) and the build-time error of that summary."""

from __future__ import annotations

import math

import torch


def top_k_log_probs(
    logits: torch.Tensor, k: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` largest log-probabilities of ``softmax(logits / temperature)`` over the last dimension,
    their indices, and the log of the probability mass outside them (float32; shapes ``(..., k)``,
    ``(..., k)``, ``(...)``)."""
    logits = logits.float()
    log_probs = torch.log_softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)
    values, index = log_probs.topk(k, dim=-1)
    rest = torch.log((1.0 - values.exp().sum(-1)).clamp_min(1e-12))
    return values, index, rest


def label_log_probs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``log softmax(logits)[label]`` at temperature 1 per sample or position (0 where the label is ignored)."""
    return pick_labels(torch.log_softmax(logits.float(), dim=-1), labels, ignore_index)


def pick_labels(log_probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``log_probs[label]`` per sample or position (0 where the label is ignored)."""
    picked = log_probs.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(labels == ignore_index, 0.0)


def top_k_summary(
    logits: torch.Tensor, labels: torch.Tensor, k: int, temperature: float, storage: torch.dtype, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """What a top-k cache stores of ``logits`` (``(..., V)``): the top ``k`` log-probabilities at
    ``temperature`` (in ``storage``), their indices, the log of the mass outside them, each label's
    log-probability at T=1, and the summed ``KL(full || top k with an even tail)`` at ``temperature``
    (the build-time error, with the top k as stored). Works through ``chunk`` positions at a time, so
    no full-vocabulary temporary larger than ``chunk x V`` floats is made."""
    width = logits.shape[-1]
    flat, flat_labels = logits.reshape(-1, width), labels.reshape(-1)
    log_tail_count = math.log(max(width - k, 1))
    parts: list[tuple[torch.Tensor, ...]] = []
    error = 0.0
    for start in range(0, len(flat), chunk):
        z = flat[start : start + chunk].float()
        log_p = torch.log_softmax(z if temperature == 1.0 else z / temperature, dim=-1)
        values, index = log_p.topk(k, dim=-1)
        rest = torch.log((1.0 - values.exp().sum(-1)).clamp_min(1e-12))
        chunk_labels = flat_labels[start : start + chunk]
        label_lp = pick_labels(log_p, chunk_labels) if temperature == 1.0 else label_log_probs(z, chunk_labels)
        stored = values.to(storage).float()
        # KL(p || q): q the stored top k, the tail r spread evenly, renormalised (as TopK.dense, then log_softmax)
        lse = torch.logaddexp(stored.logsumexp(-1), rest)
        neg_entropy = (log_p.exp() * log_p).sum(-1)
        cross = (values.exp() * stored).sum(-1) + rest.exp() * (rest - log_tail_count)
        error += (neg_entropy - cross + lse).sum().item()
        parts.append((values, index, rest, label_lp))
    shape = logits.shape[:-1]
    values, index, rest, label_lp = (torch.cat(column) for column in zip(*parts, strict=True))
    return values.reshape(*shape, k), index.reshape(*shape, k), rest.reshape(shape), label_lp.reshape(shape), error
