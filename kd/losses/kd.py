"""Hinton et al. (2015) soft-target distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import positive_temperature
from kd.losses.divergences import kl_divergence
from kd.taps import ModelOutputs


def standardized(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-sample z-score over the class dimension (population std, as the reference code)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True, unbiased=False)
    return (logits - mean) / (std + eps)


class SoftTargetKL(nn.Module):
    """``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, summed over classes, mean over the batch.

    The ``T^2`` factor keeps the gradient scale independent of the temperature, so the weight
    of this term means the same thing at every ``T``. With ``standardize``, each sample's logits
    are first z-scored, ``(z - mean(z)) / (std(z) + 1e-7)`` (logit standardisation, Sun et al.,
    CVPR 2024), so the student matches the teacher's logit relations rather than their scale.

    Args:
        temperature: softening temperature ``T > 0``.
        standardize: z-score teacher and student logits before dividing by ``T``.
    """

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperature: float = 4.0, standardize: bool = False) -> None:
        super().__init__()
        self.temperature, self.standardize = positive_temperature(temperature), standardize

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        t = self.temperature
        z_s, z_t = student.logits.float(), teacher.logits.detach().float()
        if self.standardize:
            z_s, z_t = standardized(z_s), standardized(z_t)
        log_p_s = F.log_softmax(z_s / t, dim=-1)
        log_p_t = F.log_softmax(z_t / t, dim=-1)
        kl = kl_divergence(log_p_t, log_p_s).sum() / z_s.shape[0]  # batch mean ("batchmean")
        return kl * t * t
