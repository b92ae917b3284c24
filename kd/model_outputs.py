"""What a forward pass hands the loss and the metrics: ``ModelOutputs`` (logits and tapped features), a
teacher kept as its top k (``TopK``), and the protocol of precomputed teacher outputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

from kd.errors import ConfigError


@dataclass
class TopK:
    """A teacher distribution kept as its ``k`` largest log-probabilities at ``temperature`` (``values``,
    ``index``: ``(..., k)``) and the log of the mass outside them at that temperature (``rest``: ``(...)``).
    ``label_log_prob`` (``(...)``, optional) is the exact log-probability of each position's label at
    temperature 1, for the teacher's perplexity. Teacher-output caches of large vocabularies store this
    (``kd.teacher.outputs``); how terms fill the tail is theirs to say (``kd.losses.top_k_kl``)."""

    values: torch.Tensor
    index: torch.Tensor
    rest: torch.Tensor
    width: int
    temperature: float = 1.0
    label_log_prob: torch.Tensor | None = None

    def tail_log_prob(self) -> torch.Tensor:
        """The log-probability of each entry outside the top k if the tail were spread evenly, ``(...)``."""
        return self.rest.float() - math.log(max(self.width - self.values.shape[-1], 1))

    def argmax(self) -> torch.Tensor:
        """The most likely entry at every position, ``(...)`` (the same at every temperature)."""
        return self.index[..., 0].long()

    def dense(self) -> torch.Tensor:
        """Full-width pseudo-logits ``(..., width)``: ``temperature * log p`` with the tail spread evenly,
        so ``softmax(dense() / temperature)`` is the stored distribution (for terms that read logits)."""
        full = self.tail_log_prob().unsqueeze(-1).expand(*self.values.shape[:-1], self.width).clone()
        full = full.scatter_(-1, self.index.long(), self.values.float())
        return full if self.temperature == 1.0 else full * self.temperature


def bucket_forward_kl(
    log_ps: torch.Tensor, index: torch.Tensor, log_pt_top: torch.Tensor, log_r: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``KL(p_t || p_s)`` per position over ``k + 1`` outcomes: the teacher's top ``k`` entries (``index``,
    log-probabilities ``log_pt_top``) and one bucket holding the rest (``log_r``), against the student's
    full log-probabilities ``log_ps`` at the same temperature. Returns the KL, the student's
    probabilities of the top k and the log of the student's mass outside them."""
    log_ps_top = log_ps.gather(-1, index)
    ps_top = log_ps_top.exp()
    log_s = torch.log((1.0 - ps_top.sum(-1)).clamp_min(1e-30))
    kl = (log_pt_top.exp() * (log_pt_top - log_ps_top)).sum(-1) + log_r.exp() * (log_r - log_s)
    return kl, ps_top, log_s


class ModelOutputs:
    """What one forward pass of a tapped model yields: logits and the aliased features.

    ``mask`` is the inputs' token mask (``(B, L)``, 1 = real token, 0 = padding; None for images)
    and ``index`` the data-set indices of the batch's samples (None when the batch has none).
    Cached teacher outputs may come as ``top_k`` only: ``logits`` then expands them on first use,
    and terms that can work on the top k directly (``ForwardKL``) never do.
    """

    def __init__(
        self, logits: torch.Tensor | None = None, features: dict[str, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None, index: torch.Tensor | None = None, top_k: TopK | None = None,
    ) -> None:
        if logits is None and top_k is None:
            raise ValueError("ModelOutputs needs logits or top_k")
        self._logits, self.top_k = logits, top_k
        self.features = features if features is not None else {}
        self.read: set[str] = set()  # the aliases ``feature`` handed out
        self.mask, self.index = mask, index

    @property
    def logits(self) -> torch.Tensor:
        """``(B, C)`` or ``(B, L, V)`` logits (for ``top_k`` outputs: :meth:`TopK.dense`)."""
        if self._logits is None:
            assert self.top_k is not None  # __init__ requires logits or top_k
            self._logits = self.top_k.dense()
        return self._logits

    @logits.setter
    def logits(self, value: torch.Tensor) -> None:
        self._logits = value

    def feature(self, alias: str) -> torch.Tensor:
        """The feature recorded under ``alias``; a clear error names the declared aliases."""
        if alias not in self.features:
            raise ConfigError(
                f"no feature tap named {alias!r}; this model declares {sorted(self.features)}. "
                "Declare it under `layers:` in the model's config (teacher/ or student/)."
            )
        self.read.add(alias)
        return self.features[alias]


class TeacherOutputs(Protocol):
    """Precomputed teacher outputs of one data split, read by data-set index (see ``kd.teacher.outputs``)."""

    @property
    def features(self) -> Mapping[str, torch.Tensor]:
        """The stored feature taps by alias."""
        ...

    def example_rows(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` rows a training batch could hold, and their view seed (None when unaugmented)."""
        ...

    def lookup(
        self, index: torch.Tensor, mask: torch.Tensor | None = None, device: torch.device | str = "cpu",
        view_seed: torch.Tensor | None = None,
    ) -> ModelOutputs:
        """The teacher's outputs for the samples ``index`` (of the augmented view ``view_seed``, if any)."""
        ...
