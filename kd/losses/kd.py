"""Hinton et al. (2015) soft-target distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.taps import ModelOutputs


class SoftTargetKL(nn.Module):
    """``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, summed over classes, mean over the batch.

    The ``T^2`` factor keeps the gradient scale independent of the temperature, so the weight
    of this term means the same thing at every ``T``.

    Args:
        temperature: softening temperature ``T > 0``.
    """

    needs_teacher = True

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> torch.Tensor:
        t = self.temperature
        log_p_s = F.log_softmax(student.logits.float() / t, dim=-1)
        log_p_t = F.log_softmax(teacher.logits.detach().float() / t, dim=-1)
        kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
        return kl * t * t
