"""Forward KL against a teacher kept as its top k (cached language-model outputs), without expanding the
teacher to the vocabulary: one fused log-softmax of the student forward, one exp backward."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kd.taps import TopK


class _TopKForwardKL(torch.autograd.Function):
    """Per-position ``KL(p_t || p_s)``; the gradient on the student's logits is ``(p_s - p_t) / t``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, index: torch.Tensor, log_pt_top: torch.Tensor,
                log_pt_tail: torch.Tensor, tail_count: int, t: float) -> torch.Tensor:
        log_ps = F.log_softmax(z if t == 1.0 else z / t, dim=-1)
        log_ps_top = log_ps.gather(-1, index)
        log_ps_tail_sum = log_ps.sum(-1) - log_ps_top.sum(-1)
        p_top, p_tail = log_pt_top.exp(), log_pt_tail.exp()
        entropy = (p_top * log_pt_top).sum(-1) + tail_count * p_tail * log_pt_tail
        ctx.log_ps, ctx.t = log_ps, t  # not save_for_backward: backward reuses the buffer in place
        ctx.save_for_backward(index, p_top, p_tail)
        return entropy - (p_top * log_ps_top).sum(-1) - p_tail * log_ps_tail_sum

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        index, p_top, p_tail = ctx.saved_tensors
        dz = ctx.log_ps.exp_().sub_(p_tail.unsqueeze(-1))  # p_s - p_t outside the top k
        dz.scatter_add_(-1, index, -(p_top - p_tail.unsqueeze(-1)))  # and inside it
        dz.mul_((grad / ctx.t).unsqueeze(-1))
        ctx.log_ps = None
        return dz, None, None, None, None, None


def top_k_forward_kl(student_logits: torch.Tensor, teacher: TopK, t: float) -> torch.Tensor:
    """``KL(p_t || p_s)`` per position at temperature ``t`` for a top-k teacher (its ``width - k`` tail
    entries share one log-probability). Equals the dense divergence on ``teacher.dense()``."""
    tail_count = teacher.width - teacher.values.shape[-1]
    a_top, a_tail = teacher.values.float() / t, teacher.tail_log_prob() / t
    lse_t = torch.logaddexp(torch.logsumexp(a_top, dim=-1), a_tail + math.log(max(tail_count, 1)))
    log_pt_top, log_pt_tail = a_top - lse_t.unsqueeze(-1), a_tail - lse_t
    return _TopKForwardKL.apply(student_logits, teacher.index.long(), log_pt_top, log_pt_tail, tail_count, float(t))
