"""Fashion-MNIST read from the original IDX files, with a held-out validation split."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from kd.data.batches import IndexedTensors
from kd.data.locations import data_path
from kd.data.splits import split_indices, stratified_subset
from kd.errors import ConfigError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MEAN, STD = 0.2860, 0.3530  # training-set pixel statistics


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"{path} could not be read ({err}); re-install or re-download the data files") from None
    if not data:
        raise ConfigError(f"{path} is empty (0 bytes of data); re-install or re-download the data files")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"{path}: header says shape {shape} but holds {body.size} values")
    return body.reshape(shape)


class DataFilesMissing(ConfigError, FileNotFoundError):
    """The Fashion-MNIST IDX files are not where the config says."""


def find_files(data_dir: Path) -> dict[str, Path]:
    """Locate the four IDX files in ``data_dir`` (or torchvision's ``FashionMNIST/raw`` below it)."""
    found: dict[str, Path] = {}
    for key, stem in FILES.items():
        for folder in (data_dir, data_dir / "FashionMNIST" / "raw"):
            for name in (f"{stem}.gz", stem):
                if (folder / name).is_file():
                    found.setdefault(key, folder / name)
    missing = [f"{FILES[k]}.gz" for k in FILES if k not in found]
    if missing:
        raise DataFilesMissing(
            f"Fashion-MNIST files not found in {data_dir} (config key data.module.source.data_dir): "
            f"missing {', '.join(missing)}. Get them with `sudo apt-get install "
            f"dataset-fashion-mnist` (Debian/Ubuntu; installs to {DEBIAN_DIR}), or `make data`, "
            "or set data.module.source.download=true to fetch them with torchvision (needs internet), "
            "or point data.module.source.data_dir at a folder holding the four IDX files."
        )
    return found


def load_split(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(read_idx(images).copy()).float().div_(255.0).sub_(MEAN).div_(STD)
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    if x.dim() != 3 or len(x) != len(y):
        raise ConfigError(f"{images} and {labels} do not form an image/label pair")
    return x.unsqueeze(1), y


class FashionMNIST:
    """Fashion-MNIST splits: train minus a fixed validation split, validation, official test set.

    Args:
        data_dir: folder with the IDX files (``.gz`` or not).
        download: fetch the files into ``data_dir`` with torchvision first (needs internet).
        val_size: images held out of the 60k training set for model selection.
        split_seed: seed of the train/validation split.
        train_subset: use only this many training images, every class in its share (stratified, drawn
            with ``split_seed``), or None for all.
    """

    input_shape = (1, 28, 28)

    def __init__(
        self,
        data_dir: str = DEBIAN_DIR,
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        train_subset: int | None = None,
    ) -> None:
        self.data_dir = data_path(data_dir, "data.module.source.data_dir")
        self.download = download
        self.val_size, self.split_seed, self.train_subset = val_size, split_seed, train_subset

    def prepare(self) -> None:
        """Download the files when asked to (the only step that touches the network)."""
        if self.download:
            import torchvision

            for train in (True, False):
                torchvision.datasets.FashionMNIST(str(self.data_dir), train=train, download=True)

    def load(self) -> dict[str, IndexedTensors]:
        """Read the files and return the ``train``, ``val`` and ``test`` splits."""
        files = find_files(self.data_dir)
        x, y = load_split(files["train_images"], files["train_labels"])
        train_idx, val_idx = split_indices(len(y), self.val_size, self.split_seed)
        if self.train_subset is not None:  # every class in its share, drawn at random (split_seed)
            train_idx = train_idx[stratified_subset(y[train_idx].tolist(), self.train_subset, self.split_seed)]
        return {
            "train": IndexedTensors(x[train_idx], y[train_idx]),
            "val": IndexedTensors(x[val_idx], y[val_idx]),
            "test": IndexedTensors(*load_split(files["test_images"], files["test_labels"])),
        }
