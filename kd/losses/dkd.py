"""Decoupled KD (Zhao et al., CVPR 2022): target-class and non-target-class terms, weighted apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.model_outputs import ModelOutputs


def _binary_log_probs(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log [p_target, 1 - p_target]`` per sample, computed stably in log space."""
    log_p = F.log_softmax(logits, dim=-1)
    log_target = log_p.gather(1, target[:, None])
    log_rest = torch.logsumexp(log_p.masked_fill(F.one_hot(target, logits.shape[-1]).bool(), float("-inf")), dim=-1)
    return torch.cat([log_target, log_rest[:, None]], dim=1)


class DecoupledKD(nn.Module):
    """``tckd_weight * TCKD + nckd_weight * NCKD``, both ``T^2``-scaled KL divergences with batch mean.

    TCKD compares the binary distributions [p(target), p(other)]; NCKD compares the distributions
    over the non-target classes only (target removed before the softmax).

    Args:
        temperature: softening temperature ``T > 0``.
        tckd_weight: weight of the target-class term (the paper's alpha).
        nckd_weight: weight of the non-target-class term (the paper's beta).
    """

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperature: float = 4.0, tckd_weight: float = 1.0, nckd_weight: float = 8.0) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.tckd_weight, self.nckd_weight = float(tckd_weight), float(nckd_weight)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        t = self.temperature
        z_s, z_t = student.logits.float() / t, teacher.logits.detach().float() / t
        tckd = F.kl_div(_binary_log_probs(z_s, labels), _binary_log_probs(z_t, labels),
                        log_target=True, reduction="batchmean")
        target = F.one_hot(labels, z_s.shape[-1]).bool()
        log_s = F.log_softmax(z_s.masked_fill(target, float("-inf")), dim=-1)
        log_t = F.log_softmax(z_t.masked_fill(target, float("-inf")), dim=-1)
        p_t = log_t.exp()
        # The target column has p_t = 0; 0 * (-inf - -inf) would be nan, so drop it explicitly.
        nckd = (p_t * (log_t - log_s)).masked_fill(target, 0.0).sum(-1).mean()
        return t * t * (self.tckd_weight * tckd + self.nckd_weight * nckd)
