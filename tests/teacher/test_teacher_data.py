"""``data.teacher_data``: the teacher stage learns from another data config than the student (the
default experiment: a 5k-image student budget, a teacher trained on all 55k training images)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kd.errors import ConfigError
from kd.job import train
from kd.jobs.validate import check_config
from kd.teacher.cache import cache_identity
from kd.teacher.weights import data_identity, teacher_stage_config, teacher_weights_dir

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
