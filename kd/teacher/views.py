"""Teacher logits on the augmented training views, computed ahead for every epoch of a run.

A training batch's augmented view is a pure function of its ``view_seed`` (``kd.data.batches``),
which is fixed by the run's seed, the epoch and the batch's position. So the teacher's outputs on
every view of epoch ``e`` can be computed before training, once for all the jobs of a sweep that
share the seed, the data and the batch size, and read by sample index (``train@<e>`` entries of the
teacher-output cache). Each stored row keeps the view seed it was computed for; a training batch
whose seed differs is an error, never a silently wrong teacher. The transforms (``data.module.augment``)
are part of each entry's record and name, so another list or parameter gets its own entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kd.data.batches import PositionSeededBatches
from kd.launch.processes import process_count
from kd.taps import call_model, model_device, to_channels_last, to_device
from kd.teacher.outputs import STORAGE_DTYPES, autocast_for
from kd.utils.hashing import identity_hash

Augment = Callable[[dict[str, Any]], dict[str, Any]]


@torch.no_grad()
def compute_view_outputs(
    teacher: nn.Module,
    dataset: Any,
    augment: Augment,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    num_classes: int,
    dtype: str = "float16",
    precision: str | int | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """The teacher's logits on epoch ``epoch``'s augmented training batches, by sample index (computed on
    the teacher's device, the job's; stored on the CPU).

    Args:
        teacher: the frozen teacher (put in eval mode here).
        dataset: the training split (batch-indexable, as ``kd.data.batches.IndexedTensors``).
        augment: the data module's ``augment_batch`` (batch dict with ``view_seed`` -> augmented batch).
        batch_size: the training batch size (it decides which samples share a view seed).
        seed: the stage's seed (``seed``), as the training loader's sampler gets it.
        epoch: the epoch whose views to compute.
        num_classes: logit width.
        dtype: storage dtype, a key of ``STORAGE_DTYPES``.
        precision: the teacher's precision (``teacher_outputs.precision``, else the trainer's; bf16 variants
            run the teacher under bf16 autocast).
        channels_last: run the teacher in the channels-last layout, as training steps do.
    """
    teacher.eval()
    if channels_last:
        teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits memory_format
    device = model_device(teacher)
    logits = torch.zeros(len(dataset), num_classes, dtype=STORAGE_DTYPES[dtype])
    view_seeds = torch.full((len(dataset),), -1, dtype=torch.long)
    sampler = PositionSeededBatches(len(dataset), batch_size, seed)
    sampler.set_epoch(epoch)
    with torch.random.fork_rng():  # the sampler seeds the global generator; the caller's state is kept
        for indices in sampler:
            batch = augment(dataset[indices])
            inputs = to_device(batch["inputs"], device)
            inputs = to_channels_last(inputs) if channels_last else inputs
            with autocast_for(precision, device):
                out = call_model(teacher, inputs)
            logits[batch["index"]] = out.float().to(logits.dtype).cpu()
            view_seeds[batch["index"]] = indices.view_seed
    return {"logits": logits, "features": {}, "view_seed": view_seeds}


def view_epochs(cfg: Any, datamodule: Any, loss: Any, requested: bool) -> tuple[list[int], str | None]:
    """The epochs whose augmented views to cache (``teacher_outputs.augmented_views``), or ``[]`` and
    why not (None: not requested or not augmented)."""
    if not (requested and getattr(datamodule, "augment", False)):
        return [], None
    missing = [f"{m}()" for m in ("augment_batch", "augment_description") if not hasattr(datamodule, m)]
    if missing:
        return [], f"{type(datamodule).__name__} has no {' or '.join(missing)} to replay its views and key them by"
    if loss.reads_teacher_features:
        return [], f"augmented views are cached as logits only, and loss terms {loss.active} read teacher features"
    if process_count(cfg) > 1:
        return [], "augmented views are cached for single-process training only"
    epochs = int(cfg.trainer.get("max_epochs") or -1)
    steps, per_epoch = int(cfg.trainer.get("max_steps") or -1), _batches_per_epoch(cfg, datamodule)
    if steps > 0 and per_epoch > 0:  # only the epochs max_steps reaches (a later one would run live)
        needed = -(-steps // per_epoch)
        epochs = needed if epochs < 0 else min(epochs, needed)
    if epochs < 0:
        return [], "trainer.max_epochs is unbounded (-1), so which epochs' views to compute is unknown"
    return list(range(epochs)), None


def _batches_per_epoch(cfg: Any, datamodule: Any) -> int:
    """A lower bound on training steps per epoch (0: unknown), so epochs computed from it are never too few."""
    per_epoch = int(getattr(datamodule, "train_size", 0)) // int(datamodule.batch_size)
    limit = cfg.trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(per_epoch, limit)
    return int(per_epoch * limit) if isinstance(limit, float) and limit < 1 else per_epoch


def view_record(cfg: Any, datamodule: Any, epoch: int) -> dict[str, Any]:
    """What one epoch's views depend on besides the data and the teacher (part of its cache record): the
    augmentation is ``data.module.augment``'s transforms as configs, every argument included."""
    return {"epoch": epoch, "seed": int(cfg.seed), "batch_size": int(datamodule.batch_size),
            "augment": datamodule.augment_description()}


def view_entry(name: str, view: dict[str, Any]) -> str:
    """The file name (without ``.pt``) of entry ``name`` (``train@<epoch>``) for the views of ``view``
    (:func:`view_record`): one per seed, batch size and augmentation, so a sweep over them overwrites none."""
    return f"{name}-seed{view['seed']}-batch{view['batch_size']}-aug{identity_hash(view['augment'], 8)}"
