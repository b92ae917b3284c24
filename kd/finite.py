"""Stop a run whose loss or weights stop being finite, naming the culprit, before it is saved."""

from __future__ import annotations

import torch
from torch import nn

from kd.errors import RunError

FIXES = (
    "Usual fixes: a lower optim.optimizer.lr, trainer.gradient_clip_val=1.0, smaller loss weights or "
    "loss.temperature, or trainer.precision=32-true. Continue from the last good checkpoint with resume=true."
)


def on_any_process(flags: list[bool], device: torch.device) -> tuple[list[bool], int]:
    """``flags`` OR-ed over the processes of a multi-process job (one all-reduce), and the process count."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flags, 1
    tensor = torch.tensor(flags, dtype=torch.float32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()], dist.get_world_size()


def check_finite_loss(total: torch.Tensor, parts: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    """Raise :class:`RunError` naming each loss term that is NaN or infinite (before ``backward``). In a
    multi-process job every process raises at the same step with the same message, so none waits at
    the next collective for one that stopped."""
    names = list(parts)
    here = [not bool(torch.isfinite(total).all()), *(not bool(torch.isfinite(parts[n]).all()) for n in names)]
    anywhere, processes = on_any_process(here, total.device)
    if not anywhere[0]:
        return
    bad = [name for name, flag in zip(names, anywhere[1:], strict=True) if flag]
    value = {n: f" = {float(parts[n].detach())}" if processes == 1 else "" for n in bad}  # values differ by process
    named = ", ".join(f"{name!r} (train/loss/{name}){value[name]}" for name in bad)
    total_value = f" (= {float(total.detach())})" if processes == 1 else ""
    what = f"loss term {named}" if bad else f"the weighted sum of the loss terms{total_value}"
    where = f" in at least one of the {processes} processes" if processes > 1 else ""
    raise RunError(
        f"{what} became non-finite at epoch {epoch}, step {step}{where}; the run stopped before this step's "
        f"update, so no non-finite weights were saved. {FIXES}"
    )


def check_finite_weights(module: nn.Module, where: str) -> None:
    """Raise :class:`RunError` if a parameter or buffer of ``module`` holds NaN or inf (before a save)."""
    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RunError(f"{where}: {name} holds NaN or inf values, so it was not saved. {FIXES}")
