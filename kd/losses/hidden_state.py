"""Hidden-state distillation for sequence models (TinyBERT-style): match per-token layer outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.connectors import linear
from kd.losses.layer_map import checked_layer_map, uniform_layer_map
from kd.model_outputs import ModelOutputs

Connector = Callable[[torch.Size, torch.Size], nn.Module]
DISTANCES = ("mse", "cosine")


class HiddenStateDistance(nn.Module):
    """Mean over mapped layer pairs of a per-token distance between student and teacher states.

    ``mse``: ``mean_d (W h_s - h_t)^2`` per token; ``cosine``: ``1 - cos(W h_s, h_t)`` per token;
    both averaged over real tokens (padding excluded through the batch's attention mask), then
    over layer pairs. ``W`` is a learned projection, one per pair, when the widths differ
    (TinyBERT's ``W_h``); it is identity when they match and ``project`` is false.

    Args:
        layer_map: ``{student_alias: teacher_alias}``; None maps ``hidden<i>`` taps uniformly.
        distance: ``mse`` or ``cosine``.
        project: learn a projection even when the widths are equal.
        connector: builds a projection from the two feature shapes (default: linear).
    """

    needs_teacher = True

    def __init__(
        self,
        layer_map: Mapping[str, str] | None = None,
        distance: str = "mse",
        project: bool = False,
        connector: Connector = linear,
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"loss distance={distance!r} is not one of {DISTANCES}")
        self.layer_map, self.distance, self.project = checked_layer_map(layer_map), distance, project
        self.build_connector = connector
        self.projections = nn.ModuleDict()

    def _pairs(self, student: ModelOutputs, teacher: ModelOutputs) -> dict[str, str]:
        if self.layer_map is None:
            self.layer_map = uniform_layer_map(list(student.features), list(teacher.features), "hidden")
        return self.layer_map

    def _per_token(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        if self.distance == "mse":
            return (h_s - h_t).pow(2).mean(-1)
        return 1.0 - F.cosine_similarity(h_s, h_t, dim=-1, eps=1e-8)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        losses = []
        for s_alias, t_alias in self._pairs(student, teacher).items():
            h_s, h_t = student.feature(s_alias), teacher.feature(t_alias).detach().float()
            if h_s.dim() != 3 or h_s.shape[:2] != h_t.shape[:2]:
                raise ConfigError(
                    f"hidden-state loss: taps {s_alias} {tuple(h_s.shape)} and {t_alias} {tuple(h_t.shape)} "
                    "must both be (batch, tokens, width) hidden states of the same batch"
                )
            if s_alias not in self.projections and (self.project or h_s.shape[-1] != h_t.shape[-1]):
                self.projections[s_alias] = self.build_connector(h_s.shape, h_t.shape).to(h_s.device)
            if s_alias in self.projections:
                h_s = self.projections[s_alias](h_s)
            per_token = self._per_token(h_s.float(), h_t)
            mask = student.mask.to(per_token.dtype) if student.mask is not None else torch.ones_like(per_token)
            losses.append((per_token * mask).sum() / mask.sum().clamp_min(1.0))
        return torch.stack(losses).mean()
