"""Data: IDX reading, Fashion-MNIST splits and errors, batch loaders, augmented training batches
(the transforms: test_augment.py)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kd.data.batches import IndexedTensors, batch_loader
from kd.data.fashion_mnist import DEBIAN_DIR, FILES, DataFilesMissing, FashionMNIST, read_idx
from kd.data.image import ImageDataModule
from kd.data.splits import split_indices
from kd.data.synthetic import SyntheticImages
from kd.errors import ConfigError


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def fake_fashion_mnist(folder: Path, n_train: int = 60, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / f"{FILES['train_images']}.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / f"{FILES['train_labels']}.gz", np.arange(n_train) % 10)
    write_idx(folder / f"{FILES['test_images']}.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / FILES["test_labels"], np.arange(n_test) % 10, compress=False)


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), array)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="bad magic number"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ConfigError, match="holds 3 values"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_splits_from_files(tmp_path: Path) -> None:
    fake_fashion_mnist(tmp_path)
    splits = FashionMNIST(str(tmp_path), val_size=10).load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "val": 10, "test": 20}
    assert splits["train"].inputs.shape == (50, 1, 28, 28) and splits["train"].inputs.dtype == torch.float32
    again = FashionMNIST(str(tmp_path), val_size=10).load()
    torch.testing.assert_close(again["val"].inputs, splits["val"].inputs)  # fixed split
    other = FashionMNIST(str(tmp_path), val_size=10, split_seed=1).load()
    assert not torch.equal(other["val"].labels, splits["val"].labels) or not torch.equal(
        other["val"].inputs, splits["val"].inputs
    )
    assert len(FashionMNIST(str(tmp_path), val_size=10, train_subset=7).load()["train"]) == 7


def test_a_fashion_mnist_subset_holds_every_class_in_its_share_even_from_a_class_sorted_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)  # sorted by class: the first 60 images are classes 0-2 only
    write_idx(tmp_path / f"{FILES['train_images']}.gz", rng.integers(0, 256, (200, 28, 28)))
    write_idx(tmp_path / f"{FILES['train_labels']}.gz", labels)
    write_idx(tmp_path / f"{FILES['test_images']}.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(tmp_path / FILES["test_labels"], np.arange(20) % 10, compress=False)
    train = FashionMNIST(str(tmp_path), val_size=20, train_subset=60).load()["train"]
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.sum() == 60 and counts.min() >= 5 and counts.max() <= 7  # 6 each, within rounding
    again = FashionMNIST(str(tmp_path), val_size=20, train_subset=60).load()["train"]
    assert torch.equal(again.inputs, train.inputs)  # the same subset each time (split_seed)


def test_missing_files_error_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DataFilesMissing) as err:
        FashionMNIST(str(tmp_path)).load()
    message = str(err.value)
    assert str(tmp_path) in message and "data.module.source.data_dir" in message
    assert "apt-get install dataset-fashion-mnist" in message and "download=true" in message
    assert "train-images-idx3-ubyte.gz" in message


@pytest.mark.skipif(not Path(DEBIAN_DIR).is_dir(), reason="dataset-fashion-mnist not installed (make data)")
def test_real_fashion_mnist() -> None:
    splits = FashionMNIST(DEBIAN_DIR).load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 55000, "val": 5000, "test": 10000}
    assert torch.bincount(splits["test"].labels).tolist() == [1000] * 10
    assert abs(splits["train"].inputs.mean().item()) < 0.01  # normalised with training statistics
    assert abs(splits["train"].inputs.std().item() - 1) < 0.01


def test_split_indices_are_disjoint_and_complete() -> None:
    train, val = split_indices(100, 20, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    with pytest.raises(ConfigError, match="val_size"):
        split_indices(10, 10, seed=0)


def test_batch_loader_serves_whole_dict_batches() -> None:
    data = IndexedTensors(torch.arange(10.0)[:, None], torch.arange(10))
    batches = list(batch_loader(data, batch_size=4, shuffle=False))
    assert [len(b["labels"]) for b in batches] == [4, 4, 2]
    torch.testing.assert_close(batches[1]["inputs"][:, 0], torch.tensor([4.0, 5, 6, 7]))
    shuffled = torch.cat([b["index"] for b in batch_loader(data, 4, shuffle=True)])
    assert sorted(shuffled.tolist()) == list(range(10))


def test_datamodule_augments_training_batches_only() -> None:
    from types import SimpleNamespace

    dm = ImageDataModule(SyntheticImages(train_size=8, val_size=8, test_size=8), batch_size=8, augment=True)
    dm.setup()
    raw = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(raw, 0)["inputs"], raw["inputs"])
    dm.trainer = SimpleNamespace(training=True)
    augmented = dm.on_after_batch_transfer(raw, 0)
    assert augmented["inputs"].shape == raw["inputs"].shape
    assert not torch.equal(augmented["inputs"], raw["inputs"])
    assert torch.equal(augmented["labels"], raw["labels"])
    assert dm.example_inputs(3).shape == (3, 1, 28, 28)


def test_synthetic_images_are_deterministic() -> None:
    a, b = SyntheticImages(seed=1).load(), SyntheticImages(seed=1).load()
    torch.testing.assert_close(a["train"].inputs, b["train"].inputs)
    assert {k: len(v) for k, v in a.items()} == {"train": 512, "val": 128, "test": 128}


@pytest.mark.parametrize(("size", "batch_size", "world"), [(9, 4, 2), (10, 4, 2), (13, 5, 3), (1001, 1000, 2), (7, 2, 4)])
def test_every_process_gets_the_same_number_of_evaluation_batches(size: int, batch_size: int, world: int) -> None:
    """Evaluation logging is a collective: one batch more on one process would leave the others waiting."""
    data = IndexedTensors(torch.arange(float(size))[:, None], torch.arange(size))
    per_process = [[b["index"].tolist() for b in batch_loader(data, batch_size, shuffle=False, share=(rank, world))]
                   for rank in range(world)]
    assert len({len(batches) for batches in per_process}) == 1
    assert all(0 < len(b) <= batch_size for batches in per_process for b in batches)
    assert sorted(i for batches in per_process for b in batches for i in b) == list(range(size))  # each once


def test_evaluation_batches_that_cannot_be_even_are_refused_by_key() -> None:
    data = IndexedTensors(torch.zeros(3, 1), torch.arange(3))
    with pytest.raises(ConfigError, match=r"data.module.eval_batch_size=1: 3 evaluation samples shared among 2"):
        batch_loader(data, 1, shuffle=False, share=(1, 2))
