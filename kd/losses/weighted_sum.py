"""The total objective: a weighted sum of named loss terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from kd.errors import ConfigError
from kd.model_outputs import ModelOutputs


class WeightedSum(nn.Module):
    """Total loss ``sum_i weight_i * term_i(student, teacher, labels)``.

    Any number attribute of a term, its ``weight`` included, may follow a schedule: an optional
    ``schedule: {attribute: factor_fn}`` in the term's spec, where ``factor_fn(epoch) -> float``
    multiplies the configured value (see ``kd.schedules``). :meth:`set_epoch` applies them.

    Args:
        terms: ``{name: {"weight": float, "fn": term_module, "schedule": {...}}}``, as written
            under ``loss.terms`` in the config. Terms whose current weight is 0 are not computed.
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("loss.terms is empty: declare at least one term, e.g. `loss=ce`.")
        self.fns = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        self.schedules: dict[str, dict[str, Callable[[int], float]]] = {}
        for name, spec in terms.items():
            if "fn" not in spec or "weight" not in spec:
                raise ConfigError(f"loss.terms.{name} needs both `weight` and `fn` keys, got {list(spec)}")
            self.fns[name] = spec["fn"]
            self.weights[name] = float(spec["weight"])  # its type and range: kd.config.schema
            self.schedules[name] = dict(spec.get("schedule") or {})
            for attribute in self.schedules[name]:
                if attribute != "weight" and not isinstance(getattr(spec["fn"], attribute, None), (int, float)):
                    raise ConfigError(
                        f"loss.terms.{name}.schedule.{attribute}: {type(spec['fn']).__name__} has no number "
                        f"attribute {attribute!r}; schedule `weight` or one of its hyper-parameters."
                    )
        self.base = {
            name: {a: self.weights[name] if a == "weight" else getattr(self.fns[name], a) for a in sched}
            for name, sched in self.schedules.items()
        }
        if not any(self.weights.values()):  # the configured weights, before any schedule
            raise ConfigError(
                f"every weight in loss.terms is 0 ({self.weights}): nothing would be trained."
            )

    def set_epoch(self, epoch: int) -> dict[str, float]:
        """Apply every schedule for ``epoch``; return the scheduled values by ``term/attribute``."""
        values = {}
        for name, schedule in self.schedules.items():
            for attribute, factor in schedule.items():
                value = self.base[name][attribute] * factor(epoch)
                if attribute == "weight":
                    self.weights[name] = value
                else:
                    setattr(self.fns[name], attribute, value)
                values[f"{name}/{attribute}"] = value
        return values

    def bind_train_size(self, num_samples: int) -> None:
        """Tell terms that keep per-sample state (e.g. CRD's memory banks) the training-set size."""
        for fn in self.fns.values():
            if (bind := getattr(fn, "bind_train_size", None)) is not None:
                bind(num_samples)

    def bind_teacher(self, teacher: nn.Module) -> None:
        """Lend the frozen teacher to terms that use its modules (e.g. SRD's classifier)."""
        for fn in self.fns.values():
            if (bind := getattr(fn, "bind_teacher", None)) is not None:
                bind(teacher)

    @property
    def active(self) -> list[str]:
        """Names of the terms with a non-zero weight."""
        return [name for name, weight in self.weights.items() if weight > 0]

    @property
    def reads_teacher_features(self) -> bool:
        """Whether any active teacher-based term reads tapped teacher features (not only logits)."""
        return any(
            getattr(self.fns[n], "needs_teacher", False) and getattr(self.fns[n], "reads_teacher_features", True)
            for n in self.active
        )

    @property
    def needs_teacher(self) -> bool:
        """Whether any term with a non-zero configured weight reads teacher outputs."""
        configured = {name: self.base[name].get("weight", w) for name, w in self.weights.items()}
        return any(getattr(self.fns[n], "needs_teacher", False) for n, w in configured.items() if w > 0)

    def forward(
        self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor, teacher_terms_only: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the weighted total and each active term's unweighted value; ``teacher_terms_only`` leaves
        out the terms that read no teacher (the hard-label CE on the student's own samples, on-policy)."""
        names = [n for n in self.active if not teacher_terms_only or getattr(self.fns[n], "needs_teacher", False)]
        parts = {name: self.fns[name](student, teacher, labels) for name in names}
        if not parts:  # every remaining term is scheduled to weight 0 here: a zero loss that keeps the graph
            return student.logits.sum() * 0.0, parts
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts
