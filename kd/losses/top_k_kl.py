"""Divergences against a teacher kept as its top k (cached language-model outputs).

The cache holds the teacher's top k and the mass ``r`` outside them at the training temperature (the
cache is built at the loss's temperature: ``kd.teacher.cache``), so nothing is re-tempered here; a term
at another temperature is refused. The stored top k says nothing about how the teacher spreads ``r``,
so the teacher's tail takes the shape of the student's own tail (``p_t(v) = r p_s(v) / S`` there, ``S``
the student's tail mass, not differentiated): every divergence then equals its version over k + 1
outcomes (the k entries and one "rest" bucket), a lower bound of the full-vocabulary divergence, and
the student's tail keeps whatever shape the rest of the objective gives it. Forward KL needs no
full-width teacher at all: one fused log-softmax of the student forward, one exp backward."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kd.errors import ConfigError
from kd.model_outputs import TopK, bucket_forward_kl


class _TopKForwardKL(torch.autograd.Function):
    """Per-position ``KL(p_t || p_s)`` where the teacher's tail (mass ``r`` outside its top k) is shaped
    like the student's own tail: ``p_t(v) = r p_s(v) / S`` there, ``S`` the student's tail mass. The
    value is the KL over the k entries plus one "rest" outcome; the gradient on the student's logits
    is ``(p_s - p_t) / t``: ``p_s - p_t`` on the top k, ``p_s (1 - r / S)`` on the tail."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, index: torch.Tensor, log_pt_top: torch.Tensor,
                log_r: torch.Tensor, t: float) -> torch.Tensor:
        log_ps = F.log_softmax(z if t == 1.0 else z / t, dim=-1)
        kl, ps_top, log_s = bucket_forward_kl(log_ps, index, log_pt_top, log_r)
        ctx.log_ps, ctx.t = log_ps, t  # not save_for_backward: backward reuses the buffer in place
        ctx.save_for_backward(index, log_pt_top.exp(), ps_top, (log_r - log_s).exp())
        return kl

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        index, p_top, ps_top, ratio = ctx.saved_tensors
        dz = ctx.log_ps.exp_().mul_((1.0 - ratio).unsqueeze(-1))  # tail: p_s (1 - r / S)
        dz.scatter_add_(-1, index, ps_top * ratio.unsqueeze(-1) - p_top)  # top k: p_s - p_t
        dz.mul_((grad / ctx.t).unsqueeze(-1))
        ctx.log_ps = None
        return dz, None, None, None, None


def at_temperature(teacher: TopK, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the teacher's top k and the log of its tail mass, as stored at temperature
    ``t``; a teacher cached at another temperature is refused (its tail cannot be re-tempered)."""
    if float(teacher.temperature) != float(t):
        raise ConfigError(
            f"the cached top-k teacher was computed at temperature {teacher.temperature:g}, but this term uses "
            f"loss.temperature={t:g}; a top-k cache is exact only at the temperature it was built at. Keep one "
            "unscheduled temperature for every term that reads the teacher, or set teacher_outputs.top_k=null."
        )
    return teacher.values.float(), teacher.rest.float()


def dense_teacher(teacher: TopK, log_ps: torch.Tensor, t: float) -> torch.Tensor:
    """Full-width teacher log-probabilities at temperature ``t`` for divergences that need them: the top
    k as stored, the tail mass spread in the shape of the student's (detached) tail ``log_ps``."""
    log_pt_top, log_r = at_temperature(teacher, t)
    log_ps = log_ps.detach()
    index = teacher.index.long()
    log_tail_s = torch.log((1.0 - log_ps.gather(-1, index).exp().sum(-1)).clamp_min(1e-30))
    return (log_ps + (log_r - log_tail_s).unsqueeze(-1)).scatter(-1, index, log_pt_top)


def top_k_forward_kl(student_logits: torch.Tensor, teacher: TopK, t: float) -> torch.Tensor:
    """``KL(p_t || p_s)`` per position at temperature ``t`` for a top-k teacher; equals the dense
    divergence against :func:`dense_teacher`."""
    log_pt_top, log_r = at_temperature(teacher, t)
    return _TopKForwardKL.apply(student_logits, teacher.index.long(), log_pt_top, log_r, float(t))
