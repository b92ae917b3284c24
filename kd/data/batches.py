"""In-memory tensors served as whole batches (no per-sample collation, ``num_workers=0``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sized
from typing import Any, cast

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from kd.errors import ConfigError
from kd.utils.hashing import tensors_sha256


class ViewBatch(list):
    """A training batch's sample indices, ``view_seed`` (the seed of this process's random view of it:
    augmentation) and ``step_seed`` (the seed every process shares for the step's decisions: whether
    the step samples on-policy), both fixed by the batch's position as in :class:`PositionSeededBatches`."""

    def __init__(self, indices: list[int], view_seed: int, step_seed: int) -> None:
        super().__init__(indices)
        self.view_seed, self.step_seed = view_seed, step_seed


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
        batch = {"inputs": self.inputs[index], "labels": self.labels[index], "index": index}
        if isinstance(indices, ViewBatch):  # training batches: the seed of their augmented view
            batch["view_seed"] = torch.tensor(indices.view_seed, dtype=torch.long)
        return batch

    def fingerprint(self) -> str:
        """SHA-256 of the inputs and labels (the teacher-output cache checks it)."""
        return tensors_sha256([self.inputs, self.labels])


def position_seed(seed: int, epoch: int, batch: int = -1, rank: int = 0, stream: str = "") -> int:
    """A 63-bit seed that depends only on the run's seed, the epoch, the batch's place in it and the
    process's rank (multi-process training; rank 0 draws what a single process draws), or, for a named
    ``stream``, on the first three alone (one seed that every process draws the same from).

    Hashed, because torch's generator gives similar first draws for nearby seeds (consecutive
    epochs would otherwise start with nearly the same order).
    """
    key = f"{seed}/{epoch}/{batch}" + (f"/{stream}" if stream else f"/{rank}" if rank else "")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def process_share() -> tuple[int, int]:
    """``(rank, world size)`` in torch.distributed's default group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PositionSeededBatches(Sampler[list[int]]):
    """Shuffled index batches whose order and randomness depend only on (seed, epoch, batch).

    The order of epoch ``e`` is a permutation drawn from ``position_seed(seed, e)``. Before handing
    out batch ``b`` it seeds torch's global RNG with ``position_seed(seed, e, b, rank)``, so everything
    random in that training step (dropout, negative sampling) is fixed by its position; the batch
    carries the same number as its ``view_seed``, from which the augmentation draws with its own
    generator (so the view does not depend on what else used the global RNG, e.g. Lightning
    prefetching the next batch, and the teacher's outputs on it can be computed ahead). It also carries
    a ``step_seed`` without the rank, from which every process draws the step's shared decisions alike
    (:class:`kd.lm.on_policy.StudentSamples`).
    With :meth:`state_dict` (how many batches of which epoch were handed out) this makes a run
    resumed from a mid-epoch checkpoint take exactly the steps an uninterrupted run takes.
    Lightning calls :meth:`set_epoch` before each epoch.

    ``batch_size`` is the global batch (one optimiser step): with ``world`` processes, process
    ``rank`` takes its ``batch_size / world`` share of every batch, so the processes together see
    what one process would; a last batch smaller than ``world`` is dropped.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ConfigError(
                f"data.module.batch_size={batch_size} is the global batch of one optimiser step and must "
                f"split evenly among the {world} training processes (trainer.devices x trainer.num_nodes)"
            )
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.epoch, self.handed_out = 0, 0
        self._skip: tuple[int, int] | None = None  # (epoch, batches) to skip once, after a resume

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full + (rest >= self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[ViewBatch]:
        epoch, first = self.epoch, 0
        if self._skip is not None and self._skip[0] == epoch:
            first = self._skip[1]
        self._skip = None
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(position_seed(self.seed, epoch)))
        for batch in range(first, len(self)):
            self.handed_out = batch + 1
            torch.manual_seed(seed := position_seed(self.seed, epoch, batch, self.rank))
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            step_seed = position_seed(self.seed, epoch, batch, stream="step")
            yield ViewBatch(torch.tensor_split(indices, self.world)[self.rank].tolist(), seed, step_seed)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "handed_out": self.handed_out, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = int(state["seed"])
        self._skip = (int(state["epoch"]), int(state["handed_out"]))


class ResumableLoader(DataLoader):
    """A DataLoader whose position Lightning saves in checkpoints and restores on a mid-epoch resume.

    Works with :class:`PositionSeededBatches` and ``num_workers=0`` (no batches fetched ahead), so
    the batches handed out when a checkpoint is written are exactly the ones trained on.
    """

    def state_dict(self) -> dict[str, Any]:
        return cast(PositionSeededBatches, self.sampler).state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cast(PositionSeededBatches, self.sampler).load_state_dict(state)


def batch_loader(dataset: Dataset, batch_size: int, shuffle: bool, share: tuple[int, int] | None = None) -> DataLoader:
    """A loader that draws index batches and fetches each batch with one tensor index.

    Shuffled loaders are :class:`ResumableLoader` over :class:`PositionSeededBatches`, seeded with
    ``torch.initial_seed()`` (the stage's seed, as ``seed_everything`` set it). ``share`` is this
    process's ``(rank, world size)`` (default: :func:`process_share`): training batches are split
    among the processes; an unshuffled split is cut into ``world`` contiguous parts, one each, of the
    same number of batches (:func:`even_evaluation_batches`).
    """
    rank, world = share or process_share()
    size = len(cast(Sized, dataset))  # map-style data sets with a length
    if shuffle:
        sampler = PositionSeededBatches(size, batch_size, torch.initial_seed(), rank, world)
        return ResumableLoader(dataset, sampler=sampler, batch_size=None, num_workers=0)
    if world == 1:
        batches: Iterable[list[int]] = BatchSampler(range(size), batch_size=batch_size, drop_last=False)
    else:
        batches = even_evaluation_batches(size, batch_size, rank, world)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0)


def even_evaluation_batches(size: int, batch_size: int, rank: int, world: int) -> list[list[int]]:
    """Process ``rank``'s evaluation batches: its contiguous part of ``range(size)``, cut into as many
    batches of at most ``batch_size`` as the longest part needs, so that every process runs the same
    number of evaluation steps (each step's logging is a collective; one step more on one process
    would leave the others waiting) and every sample is evaluated exactly once."""
    parts = torch.tensor_split(torch.arange(size), world)
    count = -(-len(parts[0]) // batch_size)  # the first part is the longest
    if len(parts[-1]) < count:
        raise ConfigError(
            f"data.module.eval_batch_size={batch_size}: {size} evaluation samples shared among {world} "
            f"processes leave the last one fewer samples ({len(parts[-1])}) than the others' {count} batches; "
            f"set data.module.eval_batch_size to at least 2, or use fewer processes"
        )
    return [chunk.tolist() for chunk in torch.tensor_split(parts[rank], count)]


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
