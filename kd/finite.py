"""Stop a run whose loss or weights stop being finite, naming the culprit, before it is saved."""

from __future__ import annotations

import torch
from torch import nn

from kd.errors import RunError

FIXES = (
    "Usual fixes: a lower optim.optimizer.lr, trainer.gradient_clip_val=1.0, smaller loss weights or "
    "loss.temperature, or trainer.precision=32-true. Continue from the last good checkpoint with resume=true."
)


def check_finite_loss(total: torch.Tensor, parts: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    """Raise :class:`RunError` naming each loss term that is NaN or infinite (before ``backward``)."""
    if bool(torch.isfinite(total)):
        return
    bad = {name: float(value.detach()) for name, value in parts.items() if not bool(torch.isfinite(value).all())}
    named = ", ".join(f"{name!r} (train/loss/{name}) = {value}" for name, value in bad.items())
    what = f"loss term {named}" if bad else f"the weighted sum of the loss terms (= {float(total)})"
    raise RunError(
        f"{what} became non-finite at epoch {epoch}, step {step}; the run stopped before this step's "
        f"update, so no non-finite weights were saved. {FIXES}"
    )


def check_finite_weights(module: nn.Module, where: str) -> None:
    """Raise :class:`RunError` if a parameter or buffer of ``module`` holds NaN or inf (before a save)."""
    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RunError(f"{where}: {name} holds NaN or inf values, so it was not saved. {FIXES}")
