"""``data.teacher_data``: the teacher stage learns from another data config than the student (the
default experiment: a 5k-image student budget, a teacher trained on all 55k training images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from kd.data.source_files import content_sha256
from kd.errors import ConfigError
from kd.job import train
from kd.jobs.validate import check_config
from kd.teacher.cache import cache_identity
from kd.teacher.learned_data import LEARNED_DATA_FILE, check_learned_data
from kd.teacher.weights import data_identity, teacher_stage_config, teacher_weights_dir
from kd.utils.hashing import file_sha256

FULL = ["+data@data.teacher_data=synthetic", "data.teacher_data.module.source.train_size=512"]


def test_the_teacher_learns_from_teacher_data_and_is_shared_with_that_data(make_cfg, capsys) -> None:
    small = make_cfg("loss=kd", "data.module.source.train_size=64", *FULL)
    first = train(small)
    ckpt = Path(first["teacher_ckpt"])
    taught = OmegaConf.load(ckpt.parent / "config_resolved.yaml")
    assert taught.data.module.source.train_size == 512 and "teacher_data" not in taught.data
    assert "training teacher tiny on synthetic" in capsys.readouterr().out
    # a student of the full data set finds the same teacher; the student of the subset learnt from 64
    full = train(make_cfg("loss=kd", "data.module.source.train_size=512"))
    assert Path(full["teacher_ckpt"]) == ckpt and "reusing trained teacher" in capsys.readouterr().out
    assert OmegaConf.load(Path(small.paths.output_dir) / "config_resolved.yaml").data.module.source.train_size == 64


def test_the_default_data_shares_the_full_data_sets_teacher(make_cfg, tmp_path: Path) -> None:
    budget, full = make_cfg(base=[]), make_cfg("data=fashion_mnist", base=[])
    assert teacher_weights_dir(teacher_stage_config(budget)) == teacher_weights_dir(full)
    assert teacher_stage_config(full) is full  # no teacher_data: the teacher learns from data
    # where the files lie does not change the samples, in the teacher's data either
    moved = make_cfg("data.teacher_data.module.source.data_dir=/elsewhere", base=[])
    assert data_identity(moved) == data_identity(budget)
    settings = {"dtype": "float16", "top_k": None, "features": []}
    (teacher := tmp_path / "t.ckpt").write_bytes(b"weights")
    assert cache_identity(moved, teacher, settings) == cache_identity(budget, teacher, settings)


def test_teacher_data_of_another_task_is_refused(make_cfg) -> None:
    cfg = make_cfg("loss=kd", *FULL, "data.teacher_data.num_classes=5")
    with pytest.raises(ConfigError, match=r"data.teacher_data.num_classes=5 differs from data.num_classes=10"):
        teacher_stage_config(cfg)


def test_teacher_data_keys_are_checked_like_data_keys(make_cfg) -> None:
    cfg = make_cfg("loss=kd", *FULL, "data.teacher_data.module.source.train_size=0")
    with pytest.raises(ConfigError, match=r"data.teacher_data.module.source.train_size"):
        check_config(cfg)


def write_images(path: Path, seed: int) -> str:
    """An .npz of 80 12x12 grey images of two classes (class 1 brighter) at ``path``; its path."""
    labels = np.array([0, 1] * 40)
    rng = np.random.default_rng(seed)
    images = (rng.integers(0, 120, (80, 12, 12)) + 120 * labels[:, None, None]).astype(np.uint8)
    np.savez(path, images=images, labels=labels)
    return str(path)


def test_a_trained_teacher_is_not_reused_once_the_files_it_learned_from_change(make_cfg, tmp_path: Path, capsys) -> None:
    """The teacher's folder is named by the config; the files its data config names are hashed beside its
    weights (data.json), and a later job whose files differ is refused before any work, with the fix."""
    images = write_images(tmp_path / "images.npz", seed=0)
    mine = ["loss=kd", "data=image_files", f"data.module.source.path={images}", "data.num_classes=2",
            "data.module.batch_size=16"]
    ckpt = Path(train(make_cfg(*mine))["teacher_ckpt"])
    record = json.loads((ckpt.parent / LEARNED_DATA_FILE).read_text())
    assert record == {"data": "image_files", "files_sha256": {"data.module.source.path": file_sha256(images)}}
    assert Path(train(make_cfg(*mine))["teacher_ckpt"]) == ckpt and "reusing trained teacher" in capsys.readouterr().out
    write_images(tmp_path / "images.npz", seed=1)  # the same path, other images
    changed = make_cfg(*mine)
    with pytest.raises(ConfigError, match=rf"{ckpt.parent}: the teacher trained there for this config learned from "
                                          rf"other data: data.module.source.path={images} changed since"):
        train(changed)
    assert not (Path(changed.paths.output_dir) / "job.json").exists()  # refused by the start-up checks
    kept = train(make_cfg(*mine, f"teacher.ckpt={ckpt}"))  # the fix the message names: keep it on purpose
    assert Path(kept["teacher_ckpt"]) == ckpt


def test_a_folders_content_hash_follows_its_files_not_hidden_ones(tmp_path: Path, capsys) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(b"one")
    first = content_sha256(tmp_path)
    (tmp_path / ".DS_Store").write_bytes(b"rewritten by a file browser")
    assert content_sha256(tmp_path) == first
    (tmp_path / "cat" / "a.png").rename(tmp_path / "cat" / "b.png")
    assert content_sha256(tmp_path) != first  # a file's place is part of the data (its class folder)
    assert content_sha256(tmp_path / "none") is None
    # a damaged record does not block the teacher: it is reused unchecked, and the job says so
    (tmp_path / "teacher.ckpt").write_bytes(b"weights")
    (tmp_path / LEARNED_DATA_FILE).write_text("{not json")
    check_learned_data(tmp_path, OmegaConf.create({"name": "x", "module": {"source": {"path": str(tmp_path)}}}))
    assert "is unreadable: the teacher there is reused without checking its data" in capsys.readouterr().out
