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

import torch

from kd.errors import ConfigError

SPLITS = ("train", "val", "test")


def _rows(data: Any) -> Iterable[bytes]:
    """Each sample's content as bytes (image tensors, or text token ids)."""
    if isinstance(getattr(data, "inputs", None), torch.Tensor):
        inputs = data.inputs.contiguous()
        return (row.numpy().tobytes() for row in inputs)
    return (repr(ids).encode() for ids in data.token_ids)


def train_test_duplicates(splits: Mapping[str, Any]) -> int:
    """How many test samples are exact copies of a training sample."""
    seen = {hashlib.sha1(row).digest() for row in _rows(splits["train"])}
    return sum(hashlib.sha1(row).digest() in seen for row in _rows(splits["test"]))


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
            bad = (~torch.isfinite(inputs.reshape(len(inputs), -1))).any(dim=1).nonzero().flatten()
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
