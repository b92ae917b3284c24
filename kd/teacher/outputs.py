"""Teacher outputs computed once per (teacher checkpoint, data, split, view) and read by sample index.

The cache covers one deterministic view of each sample: the data set's inputs without random
augmentation (the teacher is frozen and in eval mode, so its outputs on that view never change).
A run whose training batches are randomly augmented therefore computes the teacher live on
training batches (``teacher_outputs.cache=auto``) or stops with a ConfigError (``true``); its
validation and test batches are never augmented and always use the cache. See docs/teacher_cache.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kd.data.batches import batch_loader
from kd.errors import ConfigError, RunError
from kd.model_outputs import ModelOutputs, TopK
from kd.taps import FeatureTaps, model_device, to_channels_last, to_device
from kd.teacher.top_k import top_k_summary
from kd.utils.progress import Progress

STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class CachedTeacherOutputs:
    """One split's teacher logits (and optional features) by data-set index.

    Args:
        tensors: ``{"logits": (N, [L,] C or k), "features": {alias: (N, ...)}}`` as stored; when only
            the k largest were kept, ``logits`` holds their log-probabilities at ``top_k_temperature``,
            ``top_k_index`` their indices, ``top_k_rest`` (N, [L]) the log of the mass outside them at
            that temperature and ``label_log_prob`` (N, [L]) the log-probability of each label at T=1.
        num_classes: full logit width (classes, or the vocabulary of a language model).
    """

    def __init__(self, tensors: Mapping[str, Any], num_classes: int) -> None:
        self.logits = tensors["logits"]
        self.features: dict[str, torch.Tensor] = dict(tensors.get("features") or {})
        self.top_k_index, self.top_k_rest = tensors.get("top_k_index"), tensors.get("top_k_rest")
        self.top_k_temperature = float(tensors.get("top_k_temperature", 1.0))
        self.label_log_prob = tensors.get("label_log_prob")
        self.view_seeds = tensors.get("view_seed")  # augmented-view entries: each row's view seed
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.logits)

    def example_rows(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` rows a training batch could hold, and their view seed (augmented-view entries)."""
        if self.view_seeds is None:
            return torch.arange(n), None
        seed = self.view_seeds[0]
        return (self.view_seeds == seed).nonzero().flatten()[:n], seed

    def lookup(
        self, index: torch.Tensor, mask: torch.Tensor | None = None, device: torch.device | str = "cpu",
        view_seed: torch.Tensor | None = None,
    ) -> ModelOutputs:
        """The teacher's outputs for the samples ``index``, as float32 on ``device``; an augmented-view
        entry checks that they were computed for the batch's ``view_seed``."""
        rows = index.cpu()
        if self.view_seeds is not None and (view_seed is None or (self.view_seeds[rows] != int(view_seed)).any()):
            raise RunError(
                f"cached teacher outputs were computed for other augmented views than this batch's (view_seed "
                f"{None if view_seed is None else int(view_seed)}); set teacher_outputs.augmented_views=false"
            )
        values = self.logits[rows].float().to(device)
        features = {alias: tensor[rows].float().to(device) for alias, tensor in self.features.items()}
        if self.top_k_index is None:
            return ModelOutputs(logits=values, features=features, mask=mask, index=index)
        assert self.top_k_rest is not None  # stored with top_k_index
        label_log_prob = self.label_log_prob[rows].to(device) if self.label_log_prob is not None else None
        top_k = TopK(values, self.top_k_index[rows].to(device), self.top_k_rest[rows].to(device), self.num_classes,
                     self.top_k_temperature, label_log_prob)
        return ModelOutputs(features=features, mask=mask, index=index, top_k=top_k)


def check_feature_taps(features: Sequence[str], layers: Mapping[str, str] | None) -> None:
    """``teacher_outputs.features`` must name taps the teacher declares (``teacher.layers``)."""
    unknown = sorted(set(features) - set(layers or {}))
    if unknown:
        raise ConfigError(
            f"teacher_outputs.features: {unknown} are not taps of the teacher; it declares {sorted(layers or {})}"
        )


def autocast_for(precision: str | int | None, device: torch.device) -> Any:
    """bf16 autocast on ``device``'s type for Lightning's ``bf16-mixed``/``bf16-true`` precision, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if "bf16" in str(precision) else nullcontext()


@torch.no_grad()
def compute_teacher_outputs(
    teacher: nn.Module,
    dataset: Any,
    batch_size: int,
    *,
    layers: Mapping[str, str] | None = None,
    features: Sequence[str] = (),
    dtype: str = "float16",
    top_k: int | None = None,
    temperature: float = 1.0,
    precision: str | int | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """One eval-mode pass of ``teacher`` over ``dataset`` in order, on the teacher's device (the job's:
    ``kd.launch.hardware.job_device``): the tensors to store, on the CPU.

    Args:
        teacher: the frozen teacher (put in eval mode here).
        dataset: a batch-indexable data set yielding ``inputs`` and ``index`` (kd.data.batches).
        batch_size: samples per forward pass.
        layers: the teacher's tap aliases -> module paths.
        features: aliases (from ``layers``) to store besides the logits; fixed-shape taps only.
        dtype: storage dtype, a key of ``STORAGE_DTYPES``.
        top_k: keep only the ``top_k`` largest log-probabilities per sample (or token) at ``temperature``,
            their indices, the mass outside them and each label's log-probability at T=1 (exact teacher
            metrics); ``top_k_kl`` then holds the mean ``KL(full || top k with an even tail)`` at ``temperature``.
        temperature: the temperature of the loss the top k serve (their tail cannot be re-tempered later).
        precision: the teacher's precision (``teacher_outputs.precision``, else the trainer's; bf16 variants
            run the teacher under bf16 autocast).
        channels_last: run the teacher and its 4-D inputs in the channels-last layout, as training
            steps do (another layout can pick other kernels, with other rounding).
    """
    check_feature_taps(features, layers)
    storage = STORAGE_DTYPES[dtype]
    teacher.eval()
    if channels_last:
        teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits memory_format
    device = model_device(teacher)
    logits, indices, rests, label_lps = [], [], [], []
    stored: dict[str, list[torch.Tensor]] = {alias: [] for alias in features}
    kl_sum, positions, done = 0.0, 0, 0
    progress = Progress(len(dataset), "teacher outputs")
    tapped = {a: layers[a] for a in features} if layers is not None else {}  # no layers, no features (checked)
    with FeatureTaps(teacher, tapped) as taps:
        for batch in batch_loader(dataset, batch_size, shuffle=False, share=(0, 1)):  # the whole split
            inputs = batch["inputs"]
            if isinstance(inputs, Mapping) and features:
                raise ConfigError(
                    "teacher_outputs.features caches fixed-shape (image) taps only; text taps vary in length "
                    "with each batch's padding. Set teacher_outputs.features=[] for text teachers."
                )
            inputs = to_device(inputs, device)
            if channels_last:
                inputs = to_channels_last(inputs)
            with autocast_for(precision, device):
                out = taps(inputs)
            batch_logits = out.logits
            if top_k is not None:
                labels = batch["labels"].to(device)
                values, top, rest, label_lp, error = top_k_summary(batch_logits, labels, top_k, temperature, storage)
                kl_sum, positions = kl_sum + error, positions + rest.numel()
                label_lps.append(label_lp.cpu())
                indices.append(top.to(torch.int32).cpu())
                rests.append(rest.cpu())
                batch_logits = values
            logits.append(batch_logits.float().to(storage).cpu())
            for alias in features:
                stored[alias].append(out.features[alias].float().to(storage).cpu())
            done += len(batch["labels"])
            progress.update(done)
    progress.close()
    tensors: dict[str, Any] = {"logits": torch.cat(logits), "features": {a: torch.cat(v) for a, v in stored.items()}}
    if top_k is not None:
        tensors.update(
            top_k_index=torch.cat(indices),
            top_k_rest=torch.cat(rests),
            top_k_temperature=torch.tensor(float(temperature)),
            label_log_prob=torch.cat(label_lps),
            top_k_kl=torch.tensor(kl_sum / max(positions, 1)),
        )
    return tensors


def cache_folder(root: str | Path, teacher_name: str, data_name: str, key: str) -> Path:
    """``<root>/<teacher>-<data>-<key>``: one folder per teacher checkpoint + data + settings."""
    return Path(root) / f"{teacher_name}-{data_name}-{key}"
