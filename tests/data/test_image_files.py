"""Images from a user's files (kd/data/image_files.py): arrays and folders read by config, brought to
the declared channels and size, normalised with the training split's statistics, split and subset by
class, and a tiny run trained on them; bad files named."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from kd.data.image_files import ImageFiles
from kd.errors import ConfigError


def sorted_by_class(count: int = 60, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """RGB bytes (N, 12, 12, 3), the labels in class order (as many files are); class c is brighter."""
    labels = np.repeat(np.arange(classes), count // classes)
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 60, (len(labels), 12, 12, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    return images, labels


def test_arrays_are_resized_made_grey_normalised_and_split_by_class(tmp_path: Path, capsys) -> None:
    images, labels = sorted_by_class()
    np.savez(tmp_path / "data.npz", images=images, labels=labels)
    source = ImageFiles(str(tmp_path / "data.npz"), channels=1, size=8, val_fraction=0.2, test_fraction=0.2)
    splits = source.load()
    assert {k: tuple(v.inputs.shape) for k, v in splits.items()} == {"train": (36, 1, 8, 8), "val": (12, 1, 8, 8),
                                                                     "test": (12, 1, 8, 8)}
    for split in splits.values():  # every class in every split, in its share
        assert torch.bincount(split.labels).tolist() == [len(split) // 3] * 3
    train = splits["train"].inputs
    assert abs(float(train.mean())) < 1e-5 and float(train.std()) == pytest.approx(1.0, abs=0.02)
    assert "normalised with the training split's per-channel mean" in capsys.readouterr().out
    subset = ImageFiles(str(tmp_path / "data.npz"), size=8, train_subset=7).load()["train"]
    assert len(subset) == 7 and sorted(torch.bincount(subset.labels).tolist()) == [2, 2, 3]  # not the first 7


def test_npy_pairs_pickles_and_class_names(tmp_path: Path, capsys) -> None:
    images, labels = sorted_by_class()
    np.save(tmp_path / "x.npy", images.transpose(0, 3, 1, 2))  # (N, C, H, W)
    np.save(tmp_path / "y.npy", labels)
    rgb = ImageFiles(str(tmp_path / "x.npy"), channels=3, size=[12, 10], labels_path=str(tmp_path / "y.npy")).load()
    assert tuple(rgb["train"].inputs.shape[1:]) == (3, 12, 10)
    names = np.array(["cat", "dog", "ant"])[labels]
    with gzip.open(tmp_path / "named.pkl.gz", "wb") as handle:
        pickle.dump({"x": images[..., 0], "names": names}, handle)  # (N, H, W) grey, class names
    splits = ImageFiles(str(tmp_path / "named.pkl.gz"), images_key="x", labels_key="names", size=12).load()
    assert "3 classes from the labels: ['ant', 'cat', 'dog']" in capsys.readouterr().out
    assert set(splits["test"].labels.tolist()) == {0, 1, 2}


def test_a_folder_of_class_sub_folders_with_a_separate_test_folder(tmp_path: Path, capsys) -> None:
    from PIL import Image

    for root, count in (("train", 5), ("test", 2)):
        for c, name in enumerate(("circle", "square")):
            (tmp_path / root / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((16, 16, 3), 40 * c + i, dtype=np.uint8)).save(tmp_path / root / name / f"{i}.png")
    (tmp_path / "train" / "square" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "triangle").mkdir()  # a class with no images yet
    source = ImageFiles(str(tmp_path / "train"), test_path=str(tmp_path / "test"), size=8, val_fraction=0.2)
    splits = source.load()
    assert source.classes == ["circle", "square"]
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (8, 2, 4)
    said = capsys.readouterr().out
    assert (f"skipped 1 file(s) in {tmp_path / 'train'}'s class sub-folders that are not images by their suffix, "
            f"e.g. {tmp_path / 'train' / 'square' / 'notes.txt'}") in said
    assert f"1 sub-folder(s) of {tmp_path / 'train'} hold no images, so they are no class: triangle" in said
    (tmp_path / "train" / "circle" / "9.png").write_bytes(b"a truncated download")
    with pytest.raises(ConfigError, match=r"circle/9.png: not a readable image \(cannot identify image file .*\); "
                                          r"replace or remove it \(data.module.source.path="):
        source.load()


def test_bad_image_files_are_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", pics=np.zeros((4, 8, 8)), labels=np.arange(4))
    with pytest.raises(ConfigError, match=r"d.npz: no array 'images' \(data.module.source.images_key\); it holds \['labels', 'pics'\]"):
        ImageFiles(str(tmp_path / "d.npz")).load()
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8)))
    with pytest.raises(ConfigError, match=r"give the labels file as data.module.source.labels_path"):
        ImageFiles(str(tmp_path / "x.npy")).load()
    with pytest.raises(ConfigError, match=r"data=image_files reads your images: give data.module.source.path"):
        ImageFiles(None).prepare()
    with pytest.raises(ConfigError, match=r"does not exist \(config key data.module.source.path"):
        ImageFiles(str(tmp_path / "nowhere.npz")).prepare()
    (tmp_path / "images.csv").write_text("0,1\n")
    with pytest.raises(ConfigError, match=r"images.csv \(config key data.module.source.path or test_path\): kd reads "
                                          r"\.npz, \.npy, \.pkl or \.pkl\.gz arrays, or a folder of class sub-folders"):
        ImageFiles(str(tmp_path / "images.csv")).load()


def test_a_tiny_student_distils_on_a_users_arrays(tmp_path: Path) -> None:
    from kd.job import train
    from tests.conftest import compose_config

    images, labels = sorted_by_class(300, 3)
    np.savez(tmp_path / "mine.npz", images=images, labels=labels)
    cfg = compose_config(["data=image_files", f"data.module.source.path={tmp_path / 'mine.npz'}", "data.num_classes=3",
                          "teacher=tiny", "student=tiny", "trainer=smoke", "trainer.max_epochs=8",
                          "trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0",
                          "trainer.limit_test_batches=1.0", "~logger"], tmp_path)
    metrics = train(cfg)  # the classes differ in brightness: far above chance (1/3) after 8 short epochs
    assert metrics["test/acc"] > 0.6 and metrics["data/train_test_duplicates"] == 0
