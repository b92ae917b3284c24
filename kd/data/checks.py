"""Checks of a classification data set's content before anything trains: a valid config can still
point at data that cannot train or test a classifier (an empty split, one class, labels outside the
declared classes, non-finite or misshapen images), and such a run would finish and report a score.

Each problem is refused with the data config, the split, the first offending row and the fix.
Exact duplicates between the training and test splits are counted and reported, not refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from kd.errors import ConfigError

SPLITS = ("train", "val", "test")


def _text_rows(data: Any) -> Iterable[bytes]:
    return (repr(ids).encode() for ids in data.token_ids)


def _fingerprints(inputs: torch.Tensor) -> np.ndarray:
    """One 64-bit fingerprint per row: a fixed weighting of its bytes, 8 at a time, summed mod 2**64."""
    rows = inputs.reshape(len(inputs), -1).contiguous().view(torch.uint8).numpy()
    if rows.shape[1] % 8:
        rows = np.pad(rows, ((0, 0), (0, -rows.shape[1] % 8)))
    weights = np.random.default_rng(0).integers(1, 2**63, size=rows.shape[1] // 8, dtype=np.uint64)
    return np.asarray(rows.view(np.uint64) @ (weights | np.uint64(1)), dtype=np.uint64)


def _image_duplicates(train: torch.Tensor, test: torch.Tensor) -> int:
    """Test rows equal to a training row: rows whose fingerprints match, compared in full."""
    train_prints, test_prints = _fingerprints(train), _fingerprints(test)
    candidates = np.flatnonzero(np.isin(test_prints, train_prints))
    by_print: dict[int, list[int]] = {}
    for row in np.flatnonzero(np.isin(train_prints, test_prints[candidates])):
        by_print.setdefault(int(train_prints[row]), []).append(int(row))
    return sum(any(torch.equal(test[i], train[j]) for j in by_print[int(test_prints[i])]) for i in candidates)


def _non_finite_rows(inputs: torch.Tensor) -> torch.Tensor:
    """Rows holding a NaN or an infinity. Any of them makes the sum non-finite, so the rows are searched
    only then (large finite values can overflow the sum too: the search then finds none)."""
    if torch.isfinite(inputs.sum()):
        return torch.empty(0, dtype=torch.long)
    return (~torch.isfinite(inputs.reshape(len(inputs), -1))).any(dim=1).nonzero().flatten()


def train_test_duplicates(splits: Mapping[str, Any]) -> int:
    """How many test samples are exact copies of a training sample."""
    train, test = splits["train"], splits["test"]
    if isinstance(getattr(train, "inputs", None), torch.Tensor):
        return _image_duplicates(train.inputs, test.inputs)
    seen = {hashlib.sha1(row).digest() for row in _text_rows(train)}
    return sum(hashlib.sha1(row).digest() in seen for row in _text_rows(test))


def check_classification_data(
    splits: Mapping[str, Any], num_classes: int, data_name: str, input_shape: tuple[int, ...] | None = None,
) -> dict[str, int]:
    """Refuse splits a classifier cannot learn from or be tested on (see the module doc); returns
    ``{"train_test_duplicates": n}``."""
    where = f"data={data_name}"
    for split in SPLITS:
        data = splits.get(split)
        if data is None or len(data) == 0:
            raise ConfigError(
                f"{where}: the {split} split is empty after filtering; check the data files and the split "
                "settings (data.module.val_fraction, test_fraction, train_subset, source.val_size)"
            )
        labels = torch.as_tensor(data.labels)
        outside = ((labels < 0) | (labels >= num_classes)).nonzero().flatten()
        if len(outside):
            row = int(outside[0])
            raise ConfigError(
                f"{where}: row {row} of the {split} split has label {int(labels[row])}, outside the declared classes "
                f"0..{num_classes - 1} (data.num_classes={num_classes}; {len(outside)} such rows). Fix the labels, "
                "or set data.num_classes to the number of classes"
            )
        inputs = getattr(data, "inputs", None)
        if isinstance(inputs, torch.Tensor):
            if input_shape is not None and tuple(inputs.shape[1:]) != tuple(input_shape):
                raise ConfigError(
                    f"{where}: the {split} split's images have shape {tuple(inputs.shape[1:])}, but the data config "
                    f"declares {tuple(input_shape)} (data.module.source.input_shape, data.in_chans)"
                )
            bad = _non_finite_rows(inputs)
            if len(bad):
                raise ConfigError(
                    f"{where}: row {int(bad[0])} of the {split} split holds NaN or infinite pixel values "
                    f"({len(bad)} such rows); fix or drop them in the data files"
                )
    classes = torch.as_tensor(splits["train"].labels).unique()
    if len(classes) < 2:
        raise ConfigError(
            f"{where}: every training row has label {int(classes[0])}; a classifier needs at least two classes. "
            "Check the label column (data.module.source.label_column) and the training subset"
        )
    return {"train_test_duplicates": train_test_duplicates(splits)}
