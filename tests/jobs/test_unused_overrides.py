"""An override the job does not use is named with why, not ignored (kd/jobs/unused_overrides.py)."""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

from kd.job import train
from kd.jobs.unused_overrides import unused_overrides
from tests.conftest import TEXT_TINY


def typed(cfg: DictConfig, *overrides: str) -> DictConfig:
    """``cfg`` as a job started with ``overrides`` on the command line sees itself (kd.jobs.records)."""
    with open_dict(cfg):
        cfg.run.overrides = list(overrides)
        cfg.hydra_choices = {"loss": next(o.split("=")[1] for o in overrides if o.startswith("loss="))}
    return cfg


def test_teacher_keys_of_a_job_without_a_teacher_are_named(make_cfg, tmp_path, capsys) -> None:
    given = ("loss=ce", "teacher=tiny", "teacher.epochs=3", f"teacher.ckpt={tmp_path}", "seed=2")
    cfg = typed(make_cfg(*given), *given)
    assert unused_overrides(cfg, uses_teacher=False) == [
        "teacher=tiny (loss=ce uses no teacher)", "teacher.epochs=3 (loss=ce uses no teacher)",
        f"teacher.ckpt={tmp_path} (loss=ce uses no teacher)"]
    train(typed(make_cfg("loss=ce", "teacher.epochs=3"), "loss=ce", "teacher.epochs=3"))
    assert "[kd] not used by this job: teacher.epochs=3 (loss=ce uses no teacher)\n" in capsys.readouterr().out


def test_a_teacher_key_another_value_refers_to_is_used(make_cfg) -> None:
    """Text data reads the teacher's tokenizer, so the teacher config matters to a text job without one."""
    cfg = typed(make_cfg("loss=ce", "teacher.epochs=3", base=TEXT_TINY), "loss=ce", "teacher=text_tiny", "teacher.epochs=3")
    assert unused_overrides(cfg, uses_teacher=False) == ["teacher.epochs=3 (loss=ce uses no teacher)"]


def test_the_teacher_stage_and_cache_keys_a_job_does_not_reach_are_named(make_cfg, tmp_path) -> None:
    ckpt = tmp_path / "teacher.ckpt"
    ckpt.write_bytes(b"")
    given = ("loss=kd", f"teacher.ckpt={ckpt}", "teacher.epochs=3", "teacher_outputs.cache=false",
             "teacher_outputs.top_k=4")
    cfg = typed(make_cfg(*given), *given)
    assert unused_overrides(cfg, uses_teacher=True) == [
        "teacher.epochs=3 (teacher.ckpt is given, so no teacher stage runs)",
        "teacher_outputs.top_k=4 (teacher_outputs.cache=false: the teacher runs live)"]
    kept = ("loss=kd", "teacher.epochs=3", "teacher_outputs.cache=true", "teacher_outputs.top_k=4")
    assert unused_overrides(typed(make_cfg(*kept), *kept), uses_teacher=True) == []  # all of them used
