"""``data.module.augment`` in identities (issue 37): the job and the trained teacher are keyed by the
transform list, ``true`` is the list it stood for before (old records still resume), and ``false``,
null and ``[]`` are one job."""

from __future__ import annotations

import json

from kd.config.migrations import upgrade_identity
from kd.jobs.job_record import job_identity, job_key, record_key
from kd.teacher.weights import teacher_identity
from tests.paths import FIXTURES

SHIFT = "{_target_:kd.data.augment.RandomShift,pixels:2}"
FLIP = "{_target_:kd.data.augment.HorizontalFlip,p:0.5}"


def key(make_cfg, *overrides: str) -> str:
    return job_key(job_identity(make_cfg("loss=kd", *overrides)))


def test_true_is_the_list_it_stands_for_and_false_null_and_empty_are_one_job(make_cfg) -> None:
    listed = key(make_cfg, f"data.module.augment=[{SHIFT},{FLIP}]")
    assert key(make_cfg, "data.module.augment=true") == listed
    assert job_identity(make_cfg("data.module.augment=true"))["data"]["module"]["augment"] == [
        {"_target_": "kd.data.augment.RandomShift", "pixels": 2}, {"_target_": "kd.data.augment.HorizontalFlip", "p": 0.5}]
    off = key(make_cfg, "data.module.augment=false")
    assert off != listed and key(make_cfg, "data.module.augment=null") == off == key(make_cfg, "data.module.augment=[]")


def test_each_transform_and_argument_is_part_of_the_job_and_the_teacher(make_cfg) -> None:
    base = f"data.module.augment=[{SHIFT},{FLIP}]"
    others = [f"data.module.augment=[{SHIFT}]", f"data.module.augment=[{FLIP},{SHIFT}]",
              f"data.module.augment=[{SHIFT},{{_target_:kd.data.augment.HorizontalFlip,p:0.25}}]",
              f"data.module.augment=[{{_target_:kd.data.augment.RandomShift,pixels:1}},{FLIP}]",
              f"data.module.augment=[{SHIFT},{FLIP},{{_target_:kd.data.augment.RandomErasing}}]"]
    keys = {key(make_cfg, o) for o in [base, *others]}
    teachers = {json.dumps(teacher_identity(make_cfg(o)), sort_keys=True) for o in [base, *others]}
    assert len(keys) == len(teachers) == 1 + len(others)


def test_an_old_record_with_augment_true_is_the_same_job_as_todays_list(make_cfg) -> None:
    record = json.loads((FIXTURES / "runs_v0_1/kd/job.json").read_text())
    record["config"]["data"]["module"]["augment"] = True  # as data=fashion_mnist wrote it before issue 37
    today = job_identity(make_cfg("loss=kd", f"data.module.augment=[{SHIFT},{FLIP}]"))
    upgraded = upgrade_identity(record["config"])
    assert upgraded["data"]["module"]["augment"] == today["data"]["module"]["augment"]
    assert upgrade_identity(upgraded) == upgraded  # idempotent
    record["config"]["data"]["module"]["augment"] = False
    assert upgrade_identity(record["config"])["data"]["module"]["augment"] == []
    assert record_key(record) == job_key(upgrade_identity(record["config"]))


def test_the_teacher_datas_augment_is_upgraded_too() -> None:
    old = {"data": {"module": {"augment": False}, "teacher_data": {"module": {"augment": True}}}}
    new = upgrade_identity(old)["data"]
    assert new["module"]["augment"] == [] and [t["_target_"] for t in new["teacher_data"]["module"]["augment"]] == [
        "kd.data.augment.RandomShift", "kd.data.augment.HorizontalFlip"]
