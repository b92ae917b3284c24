"""A data module whose batches carry no ``index`` (for the start-up check of losses that need one)."""

from __future__ import annotations

from typing import Any

from kd.data.image import ImageDataModule


class NoIndexImageDataModule(ImageDataModule):
    """``ImageDataModule`` with the data-set indices dropped from every batch."""

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return {k: v for k, v in super().on_after_batch_transfer(batch, dataloader_idx).items() if k != "index"}

    def train_dataloader(self):
        return [{k: v for k, v in batch.items() if k != "index"} for batch in super().train_dataloader()]
