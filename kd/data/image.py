"""A DataModule for in-memory image splits, augmented batch-wise in-process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import lightning.pytorch as L
import torch

from kd.data.augment import Transform, apply, seeded_view
from kd.data.augment_config import transforms_of
from kd.data.batches import IndexedTensors, SplitLoaders


class ImageSource(Protocol):
    """Where images come from: a fixed input shape and ``train``/``val``/``test`` splits."""

    input_shape: tuple[int, int, int]

    def prepare(self) -> None: ...

    def load(self) -> dict[str, IndexedTensors]: ...


class ImageDataModule(SplitLoaders, L.LightningDataModule):
    """Serves a source's splits as dict batches; training batches go through the augmentation.

    Args:
        source: the data set (e.g. ``kd.data.fashion_mnist.FashionMNIST``).
        batch_size: training batch size.
        eval_batch_size: validation and test batch size.
        augment: the transforms applied in order to training batches (``kd.data.augment``; configs are
            built), true for ``kd.data.augment_config.STANDARD``, false or None for none.
    """

    def __init__(
        self, source: ImageSource, batch_size: int = 128, eval_batch_size: int = 512,
        augment: Sequence[Transform | Mapping[str, Any]] | bool | None = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment = transforms_of(augment)  # empty: not augmented
        self.splits: dict[str, IndexedTensors] = {}

    def example_inputs(self, batch_size: int = 2) -> torch.Tensor:
        """A zero batch of the right input shape (reads no data)."""
        return torch.zeros(batch_size, *self.source.input_shape)

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.source.load()

    def augment_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch's augmented view: from its ``view_seed`` (training batches carry one), else from
        torch's global generator."""
        if "view_seed" in batch:
            return {**batch, "inputs": seeded_view(batch["inputs"], int(batch["view_seed"]), self.augment)}
        return {**batch, "inputs": apply(self.augment, batch["inputs"], None)}

    def augment_description(self) -> list[dict[str, Any]]:
        """The transforms as configs, every argument included: what a cached view was computed with."""
        return [t.description() for t in self.augment]

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        if self.augment and self.trainer is not None and self.trainer.training:
            batch = self.augment_batch(batch)
        return batch
