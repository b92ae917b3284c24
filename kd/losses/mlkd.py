"""Multi-level logit distillation (Jin et al., CVPR 2023): instance, batch and class alignment of the
softened predictions at several temperatures, on the teacher's less confident half."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.divergences import kl_divergence
from kd.losses.spatial import full_precision
from kd.model_outputs import ModelOutputs


def at_or_below_median(values: torch.Tensor) -> torch.Tensor:
    """``values <= their median`` (linear interpolation, as ``np.percentile(values, 50)``)."""
    return values <= torch.quantile(values, 0.5)


class MultiLevelLogit(nn.Module):
    """Sum over temperatures ``T`` of instance, batch and class terms on ``p = softmax(z / T)``:

    - instance: ``mean_i(m_i * T^2 * KL(p_t,i || p_s,i))``;
    - batch: ``mean_ij(m_j * (P_t P_t^T - P_s P_s^T)_ij^2) / B`` (``B x B`` sample similarities);
    - class: ``mean_kl(c_l * (P_t^T P_t - P_s^T P_s)_kl^2) / C`` (``C x C`` class correlations);

    ``m_i`` marks samples whose teacher confidence (top probability at ``T = 1``) is at or below the
    batch median, ``c_l`` classes whose summed teacher probability is at or below the class median.
    The authors' code multiplies the batch-mean terms by the masks' means instead (the per-sample
    form is commented out there); kd applies them per sample and per class. It also adds the same
    terms on a strongly augmented second view, which kd's single-view batches do not have.

    Args:
        temperatures: the softening temperatures (paper code: 4, 3, 5, 2, 6).
    """

    needs_teacher = True
    reads_teacher_features = False  # logits only: cached teacher logits suffice

    def __init__(self, temperatures: Sequence[float] = (4.0, 3.0, 5.0, 2.0, 6.0)) -> None:
        super().__init__()
        if not temperatures:
            raise ConfigError("loss.temperatures: give at least one temperature, e.g. [4, 3, 5, 2, 6]")
        self.temperatures = [float(t) for t in temperatures]

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        z_s, z_t = student.logits.float(), teacher.logits.detach().float()
        batch, classes = z_s.shape
        p_t1 = F.softmax(z_t, dim=1)
        sample_mask = at_or_below_median(p_t1.max(dim=1).values).float()
        class_mask = at_or_below_median(p_t1.sum(dim=0)).float()
        total = z_s.new_zeros(())
        with full_precision(z_s):
            for t in self.temperatures:
                log_s, log_t = F.log_softmax(z_s / t, dim=1), F.log_softmax(z_t / t, dim=1)
                p_s, p_t = log_s.exp(), log_t.exp()
                instance = kl_divergence(log_t, log_s) * t * t  # (B,)
                between_samples = (p_t @ p_t.T - p_s @ p_s.T).pow(2) / batch
                between_classes = (p_t.T @ p_t - p_s.T @ p_s).pow(2) / classes
                total = total + (instance * sample_mask).mean() + (between_samples * sample_mask).mean()
                total = total + (between_classes * class_mask).mean()
        return total
