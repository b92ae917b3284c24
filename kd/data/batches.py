"""In-memory tensors served as whole batches (no per-sample collation, ``num_workers=0``)."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from kd.errors import ConfigError
from kd.teacher_cache import tensors_sha256


class IndexedTensors(Dataset):
    """Inputs and labels held in memory; indexing with a list of indices returns a whole batch."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"inputs": self.inputs[index], "labels": self.labels[index], "index": index}

    def fingerprint(self) -> str:
        """SHA-256 of the inputs and labels (the teacher-output cache checks it)."""
        return tensors_sha256([self.inputs, self.labels])


def batch_loader(dataset: IndexedTensors, batch_size: int, shuffle: bool) -> DataLoader:
    """A loader that draws index batches and fetches each batch with one tensor index."""
    sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0)


def split_indices(n: int, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of ``range(n)`` into ``n - held_out`` and ``held_out`` indices."""
    if not 0 < held_out < n:
        raise ConfigError(f"data val_size must be between 1 and {n - 1}, got {held_out}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held_out:].sort().values, order[:held_out].sort().values


class SplitLoaders:
    """Loaders over in-memory ``splits`` (``train``/``val``/``test``): a mixin for the data modules.

    Needs ``self.splits`` (a dict of batch-indexable data sets), ``self.batch_size`` and
    ``self.eval_batch_size``; training batches are shuffled.
    """

    splits: dict
    batch_size: int
    eval_batch_size: int

    @property
    def train_size(self) -> int:
        """Number of training samples (after ``setup``); batch ``index`` values lie below it."""
        return len(self.splits["train"]) if self.splits else 0

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["train"], self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["test"], self.eval_batch_size, shuffle=False)
