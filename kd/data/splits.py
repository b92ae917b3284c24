"""How a data set is split: a fixed random hold-out, a stratified train/val/test split, and stratified
subsets (every class in its share, whatever the file's order)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kd.errors import ConfigError


def split_indices(n: int, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of ``range(n)`` into ``n - held_out`` and ``held_out`` indices."""
    if not 0 < held_out < n:
        raise ConfigError(f"data val_size must be between 1 and {n - 1}, got {held_out}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held_out:].sort().values, order[:held_out].sort().values


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Indices of ``train``/``val``/``test``, each class split in the same proportions (``test_fraction``
    0: no test part, for data whose test split comes from elsewhere)."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"data val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
            "and sum to less than 1"
        )
    generator = torch.Generator().manual_seed(seed)
    labels_t = torch.as_tensor(labels)
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in labels_t.unique().tolist():
        rows = torch.nonzero(labels_t == label).flatten()
        members = rows[torch.randperm(len(rows), generator=generator)].tolist()
        n_test, n_val = round(test_fraction * len(members)), round(val_fraction * len(members))
        splits["test"] += members[:n_test]
        splits["val"] += members[n_test : n_test + n_val]
        splits["train"] += members[n_test + n_val :]
    return {name: sorted(idx) for name, idx in splits.items()}


def stratified_subset(labels: Sequence[int], count: int, seed: int) -> list[int]:
    """``count`` indices with every class in its share (largest remainders), drawn at random within each
    class: a file sorted by class never gives a subset of one class."""
    generator = torch.Generator().manual_seed(seed)
    labels_t = torch.as_tensor(labels)
    classes = labels_t.unique().tolist()
    members = {c: torch.nonzero(labels_t == c).flatten() for c in classes}
    exact = {c: count * len(rows) / len(labels_t) for c, rows in members.items()}
    take = {c: int(share) for c, share in exact.items()}
    for c in sorted(classes, key=lambda c: exact[c] - take[c], reverse=True)[: count - sum(take.values())]:
        take[c] += 1
    chosen = [int(i) for c in classes for i in members[c][torch.randperm(len(members[c]), generator=generator)][: take[c]]]
    return sorted(chosen)
