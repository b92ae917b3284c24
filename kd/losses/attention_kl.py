"""MiniLM attention transfer (Wang et al., 2020): KL between self-attention distributions."""

from __future__ import annotations

import torch
from torch import nn

from kd.errors import ConfigError
from kd.losses.layer_map import numbered_aliases
from kd.model_outputs import ModelOutputs

HEAD_MODES = ("per_head", "mean")


def last_attention(outputs: ModelOutputs) -> str:
    """The highest-numbered ``attn<i>`` tap of a model."""
    aliases = numbered_aliases(list(outputs.features), "attn")
    if not aliases:
        raise ConfigError(
            f"attention loss: no attn<i> tap among {sorted(outputs.features)}; declare one under `layers:` "
            "(e.g. attn2: bert.encoder.layer.1.attention.self[1]) or set loss.student_layer/teacher_layer"
        )
    return list(aliases.values())[-1]


class AttentionKL(nn.Module):
    """``KL(A_t || A_s)`` of attention probabilities ``(B, heads, L, L)``, MiniLM's deep self-attention loss.

    Summed over keys, averaged over heads and real query tokens (padding queries excluded; padding
    keys carry zero probability in both models). ``per_head`` needs equal head counts, as in
    MiniLM; ``mean`` first averages each model's heads into one distribution, for students with
    fewer heads. By default the last ``attn<i>`` taps of both models are compared.

    Args:
        student_layer: student tap alias, or None for its last ``attn<i>``.
        teacher_layer: teacher tap alias, or None for its last ``attn<i>``.
        heads: ``per_head`` or ``mean``.
        eps: floor on student probabilities inside the logarithm.
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str | None = None,
        teacher_layer: str | None = None,
        heads: str = "per_head",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if heads not in HEAD_MODES:
            raise ConfigError(f"loss.heads={heads!r} is not one of {HEAD_MODES}")
        self.student_layer, self.teacher_layer, self.heads, self.eps = student_layer, teacher_layer, heads, eps

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        a_s = student.feature(self.student_layer or last_attention(student)).float()
        a_t = teacher.feature(self.teacher_layer or last_attention(teacher)).detach().float()
        if a_s.dim() != 4 or a_s.shape[-2:] != a_t.shape[-2:]:
            raise ConfigError(
                f"attention loss: expected (batch, heads, tokens, tokens) maps of one batch, got student "
                f"{tuple(a_s.shape)} and teacher {tuple(a_t.shape)}"
            )
        if self.heads == "mean":
            a_s, a_t = a_s.mean(1, keepdim=True), a_t.mean(1, keepdim=True)
        elif a_s.shape[1] != a_t.shape[1]:
            raise ConfigError(
                f"attention loss: the student has {a_s.shape[1]} heads and the teacher {a_t.shape[1]}; "
                "per-head transfer needs equal counts. Set loss.heads=mean to compare head-averaged maps."
            )
        per_query = (torch.xlogy(a_t, a_t) - a_t * a_s.clamp_min(self.eps).log()).sum(-1).mean(1)  # (B, L)
        if student.mask is None:
            return per_query.mean()
        mask = student.mask.to(per_query.dtype)
        return (per_query * mask).sum() / mask.sum().clamp_min(1.0)
