"""The total objective: a weighted sum of named loss terms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kd.errors import ConfigError
from kd.taps import ModelOutputs


class WeightedSum(nn.Module):
    """Total loss ``sum_i weight_i * term_i(student, teacher, labels)``.

    Args:
        terms: ``{name: {"weight": float, "fn": term_module}}``, as written under ``loss.terms``
            in the config. Terms with weight 0 are not computed.
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("loss.terms is empty: declare at least one term, e.g. `loss=ce`.")
        self.fns = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, spec in terms.items():
            if "fn" not in spec or "weight" not in spec:
                raise ConfigError(f"loss.terms.{name} needs both `weight` and `fn` keys, got {list(spec)}")
            weight = spec["weight"]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(f"loss.terms.{name}.weight must be a number, got {weight!r}")
            if weight < 0 or not math.isfinite(weight):
                raise ConfigError(f"loss.terms.{name}.weight must be finite and >= 0, got {weight}")
            self.fns[name] = spec["fn"]
            self.weights[name] = float(weight)
        if not any(self.weights.values()):
            raise ConfigError(
                f"every weight in loss.terms is 0 ({self.weights}): nothing would be trained."
            )

    @property
    def active(self) -> list[str]:
        """Names of the terms with a non-zero weight."""
        return [name for name, weight in self.weights.items() if weight > 0]

    @property
    def needs_teacher(self) -> bool:
        """Whether any active term reads teacher outputs."""
        return any(getattr(self.fns[name], "needs_teacher", False) for name in self.active)

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the weighted total and each active term's unweighted value."""
        parts = {name: self.fns[name](student, teacher, labels) for name in self.active}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts
