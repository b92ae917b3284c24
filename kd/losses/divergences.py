"""Divergences between teacher and student distributions, for class logits and per-token logits.

Each works on ``(B, C)`` or ``(B, L, V)`` logits: it sums over the last dimension and averages over
the positions whose label is not ``ignore_index`` (padding), so the same term serves image
classifiers and language models. Probabilities are ``softmax(z / T)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.top_k_kl import dense_teacher, top_k_forward_kl
from kd.model_outputs import ModelOutputs


def _log_probs(student: ModelOutputs, teacher: ModelOutputs, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    z_s, z_t = student.logits.float(), teacher.logits.detach().float()
    if t != 1.0:  # at T=1 no division: a pass over (B, L, V) logits costs tens of ms
        z_s, z_t = z_s / t, z_t / t
    return F.log_softmax(z_s, dim=-1), F.log_softmax(z_t, dim=-1)


def masked_mean(per_position: torch.Tensor, labels: torch.Tensor | None, ignore_index: int) -> torch.Tensor:
    """Mean of ``per_position`` (shape of ``labels``) over positions whose label is not ignored."""
    if labels is None or labels.shape != per_position.shape:
        return per_position.mean()
    valid = labels != ignore_index
    return (per_position * valid).sum() / valid.sum().clamp_min(1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per position (summed over the last dimension) from log-probabilities.

    Entries where ``p = 0`` (``log p = -inf``: a padded or masked vocabulary entry) contribute 0, as
    ``0 * log 0 = 0``; ``F.kl_div`` would compute ``0 * (-inf)`` there and return NaN.
    """
    plain = (log_p.exp() * (log_p - log_q)).sum(-1)
    # A p = 0 entry makes its position NaN (0 * -inf), and only such an entry (or a NaN input, NaN either
    # way) does: the positions are checked, not the (B, L, V) entries; the masked formula costs ~40 % more.
    if not torch.isnan(plain).any():
        return plain
    absent = torch.isneginf(log_p)  # zeroed before the product, so gradients stay finite too
    log_p_kept = log_p.masked_fill(absent, 0.0)
    log_q_kept = log_q.masked_fill(absent, 0.0)
    return (log_p.exp() * (log_p_kept - log_q_kept)).sum(-1)



class _PositionwiseDivergence(nn.Module):
    """Shared plumbing: temperature, optional ``T^2`` factor, masked mean over positions."""

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperature: float = 1.0, t2_scale: bool = True, ignore_index: int = -100) -> None:
        super().__init__()
        self.temperature, self.t2_scale, self.ignore_index = float(temperature), t2_scale, ignore_index

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        if teacher is not None and teacher.top_k is not None:  # a cached top-k teacher: tail shaped like the student's
            z_s = student.logits.float()
            log_s = F.log_softmax(z_s if self.temperature == 1.0 else z_s / self.temperature, dim=-1)
            log_t = dense_teacher(teacher.top_k, log_s, self.temperature)
        else:
            assert teacher is not None  # needs_teacher: the module always passes its outputs
            log_s, log_t = _log_probs(student, teacher, self.temperature)
        scale = self.temperature**2 if self.t2_scale else 1.0
        return scale * masked_mean(self.per_position(log_s, log_t), labels, self.ignore_index)


class ForwardKL(_PositionwiseDivergence):
    """``KL(p_t || p_s)`` (mean-seeking), times ``T^2`` when ``t2_scale``.

    A teacher given as its top k (cached language-model outputs) is never expanded to the vocabulary:
    :func:`top_k_forward_kl` gives the value of the dense formula against ``dense_teacher``.
    """

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        if teacher is None or teacher.top_k is None:
            return super().forward(student, teacher, labels)
        scale = self.temperature**2 if self.t2_scale else 1.0
        per_position = top_k_forward_kl(student.logits.float(), teacher.top_k, self.temperature)
        return scale * masked_mean(per_position, labels, self.ignore_index)

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        return kl_divergence(log_t, log_s)


class ReverseKL(_PositionwiseDivergence):
    """``KL(p_s || p_t)`` (mode-seeking), times ``T^2`` when ``t2_scale``."""

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        return kl_divergence(log_s, log_t)


class GeneralizedJSD(_PositionwiseDivergence):
    """``b * KL(p_t || m) + (1 - b) * KL(p_s || m)``, ``m = b p_t + (1 - b) p_s``, ``b = jsd_beta``.

    The mixture is formed in probability space (through ``logsumexp`` of log-probabilities). As in
    TRL's GKD (where ``b`` is called ``beta``), the endpoints are the plain divergences:
    ``jsd_beta=0`` is ``KL(p_t || p_s)`` and ``jsd_beta=1`` is ``KL(p_s || p_t)``; ``jsd_beta=0.5``
    is the Jensen-Shannon divergence.
    """

    def __init__(
        self, jsd_beta: float = 0.5, temperature: float = 1.0, t2_scale: bool = True, ignore_index: int = -100
    ) -> None:
        super().__init__(temperature, t2_scale, ignore_index)
        self.jsd_beta = float(jsd_beta)

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        b = self.jsd_beta
        if b == 0.0:
            return kl_divergence(log_t, log_s)
        if b == 1.0:
            return kl_divergence(log_s, log_t)
        log_m = _mixture(log_t, log_s, b)
        return b * kl_divergence(log_t, log_m) + (1 - b) * kl_divergence(log_s, log_m)


class TotalVariation(_PositionwiseDivergence):
    """``0.5 * sum |p_t - p_s|`` per position (bounded in [0, 1]; no ``T^2`` factor by default)."""

    def __init__(self, temperature: float = 1.0, t2_scale: bool = False, ignore_index: int = -100) -> None:
        super().__init__(temperature, t2_scale, ignore_index)

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        return 0.5 * (log_t.exp() - log_s.exp()).abs().sum(-1)


class SkewForwardKL(_PositionwiseDivergence):
    """DistiLLM's skew forward KL, ``KL(p_t || l p_t + (1 - l) p_s)``, ``l = skew`` (Ko et al., ICML 2024).

    ``skew=0`` is the forward KL; a larger ``skew`` bounds the divergence (by ``-log l``) and its
    gradients where the student gives the teacher's tokens little mass.
    """

    def __init__(self, skew: float = 0.1, temperature: float = 1.0, t2_scale: bool = True, ignore_index: int = -100):
        super().__init__(temperature, t2_scale, ignore_index)
        self.skew = float(skew)

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        return kl_divergence(log_t, _mixture(log_t, log_s, self.skew))


class SkewReverseKL(_PositionwiseDivergence):
    """DistiLLM's skew reverse KL, ``KL(p_s || l p_s + (1 - l) p_t)``, ``l = skew``; ``skew=0`` is the reverse KL."""

    def __init__(self, skew: float = 0.1, temperature: float = 1.0, t2_scale: bool = True, ignore_index: int = -100):
        super().__init__(temperature, t2_scale, ignore_index)
        self.skew = float(skew)

    def per_position(self, log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
        return kl_divergence(log_s, _mixture(log_s, log_t, self.skew))


def _mixture(log_a: torch.Tensor, log_b: torch.Tensor, share_a: float) -> torch.Tensor:
    """``log(share_a * a + (1 - share_a) * b)`` from log-probabilities."""
    if share_a == 0.0:
        return log_b
    neither = torch.isneginf(log_a) & torch.isneginf(log_b)  # kept out of logsumexp: its gradient would be NaN
    terms = [log_a.masked_fill(neither, 0.0) + math.log(share_a), log_b.masked_fill(neither, 0.0) + math.log(1 - share_a)]
    return torch.logsumexp(torch.stack(terms), dim=0).masked_fill(neither, float("-inf"))
