"""Divergences against a teacher kept as its top k (cached language-model outputs).

The stored top k says nothing about how the teacher spreads the mass ``r`` outside it, so the teacher's
tail takes the shape of the student's own tail (``p_t(v) = r p_s(v) / S`` there, ``S`` the student's
tail mass, not differentiated): every divergence then compares the k entries and the tail's total
mass, and the student's tail keeps whatever shape the rest of the objective gives it. (Spreading ``r``
evenly instead teaches the student a uniform floor over ~49k tokens; measured worse, see
docs/language_models.md.) Forward KL needs no full-width teacher at all: one fused log-softmax of the
student forward, one exp backward."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kd.taps import TopK


class _TopKForwardKL(torch.autograd.Function):
    """Per-position ``KL(p_t || p_s)`` where the teacher's tail (mass ``r`` outside its top k) is shaped
    like the student's own tail: ``p_t(v) = r p_s(v) / S`` there, ``S`` the student's tail mass. The
    value is the KL over the k entries plus one "rest" outcome; the gradient on the student's logits
    is ``(p_s - p_t) / t``: ``p_s - p_t`` on the top k, ``p_s (1 - r / S)`` on the tail."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, index: torch.Tensor, log_pt_top: torch.Tensor,
                log_r: torch.Tensor, t: float) -> torch.Tensor:
        log_ps = F.log_softmax(z if t == 1.0 else z / t, dim=-1)
        log_ps_top = log_ps.gather(-1, index)
        ps_top = log_ps_top.exp()
        log_s = torch.log((1.0 - ps_top.sum(-1)).clamp_min(1e-30))
        p_top, r = log_pt_top.exp(), log_r.exp()
        kl = (p_top * (log_pt_top - log_ps_top)).sum(-1) + r * (log_r - log_s)
        ctx.log_ps, ctx.t = log_ps, t  # not save_for_backward: backward reuses the buffer in place
        ctx.save_for_backward(index, p_top, ps_top, r / log_s.exp())
        return kl

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        index, p_top, ps_top, ratio = ctx.saved_tensors
        dz = ctx.log_ps.exp_().mul_((1.0 - ratio).unsqueeze(-1))  # tail: p_s (1 - r / S)
        dz.scatter_add_(-1, index, ps_top * ratio.unsqueeze(-1) - p_top)  # top k: p_s - p_t
        dz.mul_((grad / ctx.t).unsqueeze(-1))
        ctx.log_ps = None
        return dz, None, None, None, None


def tempered(teacher: TopK, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher at temperature ``t``: log-probabilities of its top k and the log of its tail mass
    (the tail counted as ``width - k`` equal entries, as stored)."""
    log_count = math.log(max(teacher.width - teacher.values.shape[-1], 1))
    a_top, a_tail = teacher.values.float() / t, teacher.tail_log_prob() / t
    lse = torch.logaddexp(torch.logsumexp(a_top, dim=-1), a_tail + log_count)
    return a_top - lse.unsqueeze(-1), a_tail - lse + log_count


def dense_teacher(teacher: TopK, log_ps: torch.Tensor, t: float) -> torch.Tensor:
    """Full-width teacher log-probabilities at temperature ``t`` for divergences that need them: the top
    k as stored, the tail mass spread in the shape of the student's (detached) tail ``log_ps``."""
    log_pt_top, log_r = tempered(teacher, t)
    log_ps = log_ps.detach()
    index = teacher.index.long()
    log_tail_s = torch.log((1.0 - log_ps.gather(-1, index).exp().sum(-1)).clamp_min(1e-30))
    return (log_ps + (log_r - log_tail_s).unsqueeze(-1)).scatter(-1, index, log_pt_top)


def top_k_forward_kl(student_logits: torch.Tensor, teacher: TopK, t: float) -> torch.Tensor:
    """``KL(p_t || p_s)`` per position at temperature ``t`` for a top-k teacher; equals the dense
    divergence against :func:`dense_teacher`."""
    log_pt_top, log_r = tempered(teacher, t)
    return _TopKForwardKL.apply(student_logits, teacher.index.long(), log_pt_top, log_r, float(t))
