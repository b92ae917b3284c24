"""Softmax regression representation distillation (Yang et al., ICLR 2021): the student's
penultimate representation, mapped to the teacher's width, should work with the teacher's classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd.errors import ConfigError
from kd.losses.connectors import in_own_dtype, linear
from kd.losses.embedding import tap_embedding
from kd.model_outputs import ModelOutputs


def find_head(teacher: nn.Module, path: str | None) -> nn.Module:
    """The teacher's classifier: the module at ``path``, or (``None``) its last ``nn.Linear``."""
    linears = [(name, m) for name, m in teacher.named_modules() if isinstance(m, nn.Linear)]
    if path is None:
        if not linears:
            raise ConfigError(f"srd: the teacher ({type(teacher).__name__}) has no nn.Linear classifier")
        return linears[-1][1]
    try:
        return teacher.get_submodule(path)
    except AttributeError:
        raise ConfigError(
            f"loss.teacher_head={path!r} is no module of the teacher; its linear layers: {[n for n, _ in linears]}"
        ) from None


class SoftmaxRegression(nn.Module):
    """``feature_weight * mse(r(h_s), h_t) + mse(W_t r(h_s) + b_t, z_t)``.

    ``h`` are the pooled ``embedding`` taps (the classifiers' inputs), ``r`` a linear connector to
    the teacher's width (built on the first call, trained with the student), ``W_t, b_t`` the frozen
    teacher classifier and ``z_t`` the teacher's logits. The classifier is borrowed from the teacher
    when the distillation module binds it (``bind_teacher``), never copied or trained.

    Args:
        student_layer: student tap alias of the representation.
        teacher_layer: teacher tap alias of the representation.
        teacher_head: module path of the teacher's classifier, or None for its last ``nn.Linear``.
        feature_weight: weight of the representation MSE inside this term.
    """

    needs_teacher = True

    def __init__(
        self, student_layer: str = "embedding", teacher_layer: str = "embedding", teacher_head: str | None = None,
        feature_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.student_layer, self.teacher_layer, self.teacher_head = student_layer, teacher_layer, teacher_head
        self.feature_weight = feature_weight
        self.connector: nn.Module | None = None
        self._head: tuple[nn.Module, ...] = ()  # a tuple: not registered, so it stays the teacher's

    def bind_teacher(self, teacher: nn.Module) -> None:
        """Borrow the teacher's classifier."""
        self._head = (find_head(teacher, self.teacher_head),)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        assert teacher is not None  # needs_teacher: the module always passes its outputs
        if not self._head:
            raise ConfigError("srd needs the teacher's classifier: call bind_teacher(teacher) first")
        h_s, h_t = tap_embedding(student, self.student_layer), tap_embedding(teacher, self.teacher_layer).detach()
        if self.connector is None:
            self.connector = linear(h_s.shape, h_t.shape).to(h_s.device)
        mapped = in_own_dtype(self.connector, h_s).float()
        logits = in_own_dtype(self._head[0], mapped).float()
        return self.feature_weight * F.mse_loss(mapped, h_t) + F.mse_loss(logits, teacher.logits.detach().float())
