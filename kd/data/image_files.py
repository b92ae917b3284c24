"""Images from your own files, no Python: arrays (``.npz`` with an images and a labels key, a pair of
``.npy`` files, or a pickle, optionally gzip'ed, of a dict of arrays) or a folder tree of class
sub-folders (ImageFolder). An ``ImageSource`` for ``kd.data.image.ImageDataModule``.

Images are brought to the declared ``channels`` and ``size`` (grey <-> RGB, bilinear resize),
scaled to [0, 1] when stored as bytes, and normalised with the per-channel mean and standard
deviation of the training split, which are printed. Labels may be integers or class names (the
sorted names become classes 0..n-1, printed). Without a ``test_path`` the data is split by class
(stratified) into train/val/test; a ``train_subset`` is stratified too, so a file sorted by class never
gives a subset of one class.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kd.data.batches import IndexedTensors
from kd.data.locations import data_path
from kd.data.splits import stratified_split, stratified_subset
from kd.errors import ConfigError

FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _read_arrays(path: Path, images_key: str, labels_key: str, labels_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one array file (see the module doc)."""
    name = path.name.lower()
    if name.endswith(".npy"):
        if labels_path is None:
            raise ConfigError(f"{path}: a .npy file holds one array; give the labels file as data.module.source.labels_path")
        return np.load(path, allow_pickle=False), np.load(labels_path, allow_pickle=False)
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as arrays:
            found: dict[str, Any] = dict(arrays)
    elif name.endswith((".pkl", ".pickle", ".pkl.gz", ".pickle.gz")):
        opener: Any = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            found = pickle.load(handle)  # noqa: S301 - the user's own data file, named in their config
        if not isinstance(found, dict):
            raise ConfigError(f"{path}: the pickle holds a {type(found).__name__}; kd reads a dict of arrays")
    else:
        raise ConfigError(f"{path} (config key data.module.source.path or test_path): kd reads .npz, .npy, .pkl or "
                          ".pkl.gz arrays, or a folder of class sub-folders")
    for key, option in ((images_key, "images_key"), (labels_key, "labels_key")):
        if key not in found:
            raise ConfigError(f"{path}: no array {key!r} (data.module.source.{option}); it holds {sorted(found)}")
    return np.asarray(found[images_key]), np.asarray(found[labels_key])


def _read_folder(root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Every image under ``root/<class>/`` and its class name."""
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    labels: list[str] = []
    others: list[Path] = []
    empty: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = len(images)
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            if file.suffix.lower() not in FOLDER_SUFFIXES:
                others.append(file)
                continue
            try:
                with Image.open(file) as image:
                    images.append(np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image))
            except (UnidentifiedImageError, OSError) as err:  # a truncated or mislabelled file
                raise ConfigError(f"{file}: not a readable image ({err}); replace or remove it "
                                  f"(data.module.source.path={root} reads every {'/'.join(FOLDER_SUFFIXES)} file "
                                  "in its class sub-folders)") from None
            labels.append(folder.name)
        if len(images) == found:
            empty.append(folder.name)
    if not images:
        raise ConfigError(f"{root}: no images ({', '.join(FOLDER_SUFFIXES)}) in class sub-folders <class>/<image>")
    if empty:
        print(f"[kd] data: {len(empty)} sub-folder(s) of {root} hold no images, so they are no class: "
              f"{', '.join(empty)}", flush=True)
    if others:
        print(f"[kd] data: skipped {len(others)} file(s) in {root}'s class sub-folders that are not images by their "
              f"suffix, e.g. {others[0]}", flush=True)
    return images, np.asarray(labels)


def _as_tensor(image: np.ndarray, channels: int, size: tuple[int, int], where: str) -> torch.Tensor:
    """One image or a stack as float ``(N, channels, *size)``; bytes scaled to [0, 1]."""
    x = torch.from_numpy(np.array(image, order="C"))  # a copy: arrays read from files may be read-only
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if x.dim() == 2:  # one grey image
        x = x[None, None]
    elif x.dim() == 3:  # (N, H, W) grey, or one (H, W, C) image
        x = x.permute(2, 0, 1)[None] if x.shape[-1] in (1, 3, 4) and x.shape[0] not in (1, 3, 4) else x[:, None]
    elif x.dim() == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise ConfigError(f"{where}: images of shape {tuple(x.shape)}; kd reads (N, H, W), (N, H, W, C) or (N, C, H, W)")
    x = x[:, :3]  # an alpha channel is dropped
    if x.shape[1] != channels:
        weights = torch.tensor([0.299, 0.587, 0.114])[: x.shape[1]]
        x = (x * weights.view(1, -1, 1, 1) / weights.sum()).sum(1, keepdim=True) if channels == 1 else x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


class ImageFiles:
    """Images and labels from your files (see the module doc).

    Args:
        path: an array file or a folder of class sub-folders.
        channels: 1 (grey) or 3 (RGB): what the models take.
        size: height and width (an int for square images).
        test_path: a file or folder holding the test split; null = split ``path`` by class.
        images_key, labels_key: the arrays' names in a ``.npz`` or pickle.
        labels_path: the labels ``.npy`` beside an images ``.npy``.
        val_fraction, test_fraction: shares of each class held out (``test_fraction`` without ``test_path``).
        split_seed: seed of the split and of the subset.
        train_subset: use only this many training images (stratified), or null for all.
    """

    def __init__(
        self, path: str | None, channels: int = 1, size: int | list[int] = 28, test_path: str | None = None,
        images_key: str = "images", labels_key: str = "labels", labels_path: str | None = None,
        val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0, train_subset: int | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"data.module.source.channels={channels}: give 1 (grey) or 3 (RGB)")
        self.path = data_path(path) if path else None
        self.test_path = data_path(test_path, "data.module.source.test_path") if test_path else None
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.input_shape = (channels, *self.size)
        self.images_key, self.labels_key = images_key, labels_key
        self.labels_path = data_path(labels_path, "data.module.source.labels_path") if labels_path else None
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.train_subset = train_subset
        self.classes: list[str] = []

    def prepare(self) -> None:
        """Check the files are there (before anything is read)."""
        if self.path is None:
            raise ConfigError("data=image_files reads your images: give data.module.source.path=<an .npz, .npy, "
                              ".pkl(.gz) file or a folder of class sub-folders>")
        for path in (self.path, self.test_path):
            if path is not None and not path.exists():
                raise ConfigError(f"{path} does not exist (config key data.module.source.path or test_path)")

    def read(self, path: Path) -> tuple[torch.Tensor, np.ndarray]:
        """All images of ``path`` as a float stack, and their raw labels."""
        if path.is_dir():
            images, labels = _read_folder(path)
            return torch.cat([_as_tensor(i, self.input_shape[0], self.size, str(path)) for i in images]), labels
        images_np, labels = _read_arrays(path, self.images_key, self.labels_key, self.labels_path)
        if len(images_np) != len(labels):
            raise ConfigError(f"{path}: {len(images_np)} images but {len(labels)} labels")
        return _as_tensor(images_np, self.input_shape[0], self.size, str(path)), labels.reshape(-1)

    def encode(self, *label_sets: np.ndarray) -> list[torch.Tensor]:
        """Integer labels as they are; class names as their index among the sorted names (printed)."""
        if all(np.issubdtype(labels.dtype, np.integer) for labels in label_sets):
            return [torch.as_tensor(labels.astype(np.int64)) for labels in label_sets]
        self.classes = sorted({str(name) for labels in label_sets for name in labels})
        print(f"[kd] data: {len(self.classes)} classes from the labels: {self.classes}", flush=True)
        index = {name: i for i, name in enumerate(self.classes)}
        return [torch.as_tensor([index[str(name)] for name in labels]) for labels in label_sets]

    def load(self) -> dict[str, IndexedTensors]:
        """The ``train``, ``val`` and ``test`` splits, normalised with the training split's statistics."""
        self.prepare()
        assert self.path is not None  # prepare() refuses a missing path
        x, raw = self.read(self.path)
        if self.test_path is not None:
            test_x, test_raw = self.read(self.test_path)
            y, test_y = self.encode(raw, test_raw)
            idx = stratified_split(y.tolist(), self.val_fraction, 0.0, self.split_seed)
        else:
            (y,) = self.encode(raw)
            idx = stratified_split(y.tolist(), self.val_fraction, self.test_fraction, self.split_seed)
            test_x, test_y = x[idx["test"]], y[idx["test"]]
        train = sorted(idx["train"])
        if self.train_subset is not None and self.train_subset < len(train):
            train = [train[i] for i in stratified_subset(y[train].tolist(), self.train_subset, self.split_seed)]
        mean = x[train].mean(dim=(0, 2, 3), keepdim=True)[0]
        std = x[train].std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-6)
        print(f"[kd] data: normalised with the training split's per-channel mean {[round(v, 4) for v in mean.flatten().tolist()]} "
              f"and std {[round(v, 4) for v in std.flatten().tolist()]}", flush=True)

        def part(images: torch.Tensor, labels: torch.Tensor) -> IndexedTensors:
            return IndexedTensors((images - mean) / std, labels)

        return {"train": part(x[train], y[train]), "val": part(x[idx["val"]], y[idx["val"]]), "test": part(test_x, test_y)}
