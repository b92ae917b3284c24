"""Hinton et al. (2015) soft-target distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.losses.divergences import kl_divergence
from kd.model_outputs import ModelOutputs


def standardized(logits: torch.Tensor, std_correction: int = 0, eps: float = 1e-7) -> torch.Tensor:
    """Per-sample z-score over the class dimension; the std divides by ``C - std_correction``
    (0: population std, the paper's pseudo-code; 1: unbiased std, the authors' code)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True, correction=std_correction)
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
        std_correction: 0 divides the variance by the class count C (population std, the paper's
            pseudo-code), 1 by C - 1 (unbiased std, ``torch.std``'s default in the authors' code).
    """

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperature: float = 4.0, standardize: bool = False, std_correction: int = 0) -> None:
        super().__init__()
        self.temperature, self.standardize = float(temperature), standardize
        self.std_correction = std_correction

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        t = self.temperature
        z_s, z_t = student.logits.float(), teacher.logits.detach().float()
        if self.standardize:
            z_s, z_t = standardized(z_s, self.std_correction), standardized(z_t, self.std_correction)
        log_p_s = F.log_softmax(z_s / t, dim=-1)
        log_p_t = F.log_softmax(z_t / t, dim=-1)
        kl = kl_divergence(log_p_t, log_p_s).sum() / z_s.shape[0]  # batch mean ("batchmean")
        return kl * t * t
