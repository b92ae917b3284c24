"""Contrastive representation distillation (Tian et al., ICLR 2020) with momentum memory banks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.connectors import in_own_dtype
from kd.losses.embedding import tap_embedding
from kd.model_outputs import ModelOutputs


def nce_loss(scores: torch.Tensor, num_samples: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE with the positive in column 0 and ``K`` noise samples (noise law ``1/N``), batch mean."""
    k, noise = scores.shape[1] - 1, 1.0 / num_samples
    log_d1 = torch.log(scores[:, 0] / (scores[:, 0] + k * noise + eps))
    log_d0 = torch.log((k * noise) / (scores[:, 1:] + k * noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / scores.shape[0]


class ContrastiveRepresentation(nn.Module):
    """CRD: NCE between each sample's embedding and memory-bank entries of the other network.

    Student and teacher embeddings (pooled taps) pass through linear heads to ``feat_dim`` and are
    L2-normalised. Two memory banks hold one entry per training sample (``num_samples`` rows,
    sized from the data module at fit start, found by the batch's ``index``). For each sample the
    positive is its own entry; ``nce_k`` negatives are drawn uniformly from all entries (CRD's "relax"
    sampling) once per batch and shared by its samples, as in MoCo: one ``K x D`` gather instead of the
    reference code's ``B x K x D`` per-sample draw (same expectation, ~7x cheaper on CPU). Scores are ``exp(v . m / nce_t) / Z`` with ``Z`` fixed from the first batch;
    loss = NCE(student anchor vs teacher bank) + NCE(teacher anchor vs student bank). Banks then move
    toward the new embeddings: ``m <- normalize(nce_m * m + (1 - nce_m) * v)``.

    Args:
        student_layer: student tap alias.
        teacher_layer: teacher tap alias.
        feat_dim: embedding width.
        nce_k: negatives per batch (paper: 16384).
        nce_t: softmax temperature (paper: 0.07).
        nce_m: memory momentum (paper: 0.5).
    """

    needs_teacher = True
    # kd.jobs.scale_out refuses it in a multi-process job, saying why:
    single_process_only = ("its memory banks are buffers, and DDP copies rank 0's to every process at each step, "
                           "discarding the other processes' updates")
    memory_s: torch.Tensor  # buffers (register_buffer)
    memory_t: torch.Tensor
    z: torch.Tensor

    def __init__(
        self,
        student_layer: str = "stage4",
        teacher_layer: str = "stage4",
        feat_dim: int = 128,
        nce_k: int = 16384,
        nce_t: float = 0.07,
        nce_m: float = 0.5,
    ) -> None:
        super().__init__()
        if nce_k < 1 or not 0 < nce_t or not 0 <= nce_m < 1:
            raise ConfigError(f"crd: need nce_k >= 1, nce_t > 0, 0 <= nce_m < 1; got {nce_k}, {nce_t}, {nce_m}")
        self.student_layer, self.teacher_layer, self.feat_dim = student_layer, teacher_layer, feat_dim
        self.nce_k, self.nce_t, self.nce_m = nce_k, nce_t, nce_m
        self.embed_s: nn.Module | None = None
        self.embed_t: nn.Module | None = None
        self.register_buffer("memory_s", torch.empty(0, feat_dim))
        self.register_buffer("memory_t", torch.empty(0, feat_dim))
        self.register_buffer("z", torch.full((2,), -1.0))  # normalisers (student, teacher anchors)

    def bind_train_size(self, num_samples: int) -> None:
        """Size (and randomly initialise) the memory banks for ``num_samples`` training samples."""
        if self.memory_s.shape[0] == num_samples:
            return
        bound = 1.0 / math.sqrt(self.feat_dim / 3)
        for name in ("memory_s", "memory_t"):
            bank = torch.rand(num_samples, self.feat_dim, device=self.z.device).mul_(2 * bound).sub_(bound)
            setattr(self, name, bank)
        self.z.fill_(-1.0)

    def _scores(
        self, anchor: torch.Tensor, bank: torch.Tensor, index: torch.Tensor, negatives: torch.Tensor, which: int
    ) -> torch.Tensor:
        """``(B, 1 + K)`` scores: each anchor against its own bank row, then the K shared negatives."""
        anchor = anchor.to(bank.dtype)  # float64 banks under trainer.precision=64-true
        positive = (bank[index] * anchor).sum(-1, keepdim=True)  # (B, 1)
        negative = anchor @ bank[negatives].T  # (B, K): one gather of K rows, not B x K
        scores = torch.exp(torch.cat([positive, negative], dim=1) / self.nce_t)
        if self.z[which] < 0:
            self.z[which] = scores.mean().detach() * bank.shape[0]
        return scores / float(self.z[which])

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        e_s, e_t = tap_embedding(student, self.student_layer), tap_embedding(teacher, self.teacher_layer).detach()
        if self.embed_s is None:
            self.embed_s = nn.Linear(e_s.shape[1], self.feat_dim).to(e_s.device)
            self.embed_t = nn.Linear(e_t.shape[1], self.feat_dim).to(e_s.device)
        assert self.embed_t is not None  # built with embed_s
        with torch.autocast(e_s.device.type, enabled=False):
            v_s = F.normalize(in_own_dtype(self.embed_s, e_s).float(), dim=1)
            v_t = F.normalize(in_own_dtype(self.embed_t, e_t).float(), dim=1)
        if student.index is None:
            if torch.is_grad_enabled():
                raise ConfigError("crd needs the data set indices of each training batch (batch['index'])")
            return v_s.sum() * 0.0  # the dry run that sizes the heads
        num_samples = self.memory_s.shape[0]
        if num_samples == 0 or int(student.index.max()) >= num_samples:
            raise ConfigError(
                f"crd memory holds {num_samples} samples but the batch has index {int(student.index.max())}; "
                "the data module must expose train_size (its training-set length)"
            )
        negatives = torch.randint(num_samples, (self.nce_k,), device=v_s.device)
        loss = nce_loss(self._scores(v_s, self.memory_t, student.index, negatives, 0), num_samples) + nce_loss(
            self._scores(v_t, self.memory_s, student.index, negatives, 1), num_samples
        )
        with torch.no_grad():
            for bank, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
                moved = bank[student.index] * self.nce_m + v.detach() * (1 - self.nce_m)
                bank[student.index] = F.normalize(moved, dim=1)
        return loss
