"""The key registry (kd/config): every key's identities against a reviewed snapshot, and the views,
legacy values and run names derived from the declarations."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from kd.config.identities import DECLARED, identities_of, keys_entering, run_name, view
from kd.config.migrations import LEGACY, upgrade_identity
from kd.config.rules import BASELINE, CACHE, EVERY, JOB, NOWHERE, RUN_NAME, TEACHER
from kd.jobs.job_record import job_identity
from kd.teacher.cache import cache_identity
from kd.teacher.weights import teacher_identity
from tests.conftest import compose_config
from tests.paths import FIXTURES

SNAPSHOT = FIXTURES / "key_identities.txt"
ORDER = (JOB, BASELINE, TEACHER, CACHE, RUN_NAME)
# Option sets whose composed configs, together, hold every kind of key kd's configs use.
COMPOSED = [
    [], ["loss=dkd"], ["loss=feature"], ["loss=crd"], ["experiment=lm_prune"], ["experiment=lm_smollm2", "loss=jsd"],
    ["experiment=rt_minilm"], ["experiment=fmnist_pairs"], ["trainer=ddp"], ["data=fashion_mnist_5k"],
]


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for name, value in node.items() for k in leaf_keys(value, f"{prefix}.{name}" if prefix else str(name))]
    return [prefix]


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    tmp = tmp_path_factory.mktemp("configs")
    return [compose_config(overrides, tmp) for overrides in COMPOSED]


def classification(key: str) -> str:
    found = identities_of(key)
    return " ".join(i for i in ORDER if i in found) or "nowhere"


def test_every_keys_identities_match_the_snapshot(configs: list[Any]) -> None:
    """A changed classification (a key that now enters or leaves resume's, the baseline's, the teacher's,
    the cache's or the run name's identity) shows here as a diff to review; ``KD_UPDATE_SNAPSHOTS=1``
    rewrites the snapshot after a deliberate change."""
    keys = set(DECLARED)
    for cfg in configs:
        keys |= {k for k in leaf_keys(OmegaConf.to_container(cfg, resolve=False)) if not k.startswith("hydra")}
    lines = [f"{key}: {classification(key)}" + (f"  legacy {LEGACY[key].value!r} where {LEGACY[key].when}" if key in LEGACY else "")
             for key in sorted(keys)]
    text = "\n".join(lines) + "\n"
    if os.environ.get("KD_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()


def test_inheritance_and_declared_exceptions() -> None:
    assert identities_of("paths.log_dir") == NOWHERE == identities_of("logger.offline")
    assert identities_of("data.module.source.root") == EVERY  # a data key: every identity
    assert not {TEACHER, CACHE} & identities_of("data.module.eval_batch_size")
    assert TEACHER in identities_of("data.module.batch_size") and CACHE not in identities_of("data.module.batch_size")
    assert identities_of("loss.terms.kd.fn.temperature") == {JOB, RUN_NAME}  # distillation only: not the baseline's
    assert identities_of("student.layers.preact3") == NOWHERE != identities_of("student.layers.stage3")
    assert keys_entering("trainer", TEACHER) == (
        "accumulate_grad_batches", "gradient_clip_val", "limit_train_batches", "max_steps", "precision")


def test_views_leave_out_exactly_the_keys_that_do_not_enter(configs: list[Any]) -> None:
    for cfg in configs:
        identity = job_identity(cfg)
        keys = leaf_keys(identity)
        assert keys and all(JOB in identities_of(k) for k in keys)
        assert not {"paths", "logger", "run", "threads", "resume"} & set(identity)
        assert "modality" not in str(keys) and "modality" in OmegaConf.to_yaml(cfg)
        baseline = view(identity, "", BASELINE)
        assert set(identity) - set(baseline) <= {"loss", "teacher", "teacher_outputs", "on_policy", "optimized_metric"}
        assert "loss" in identity and "loss" not in baseline
        data = teacher_identity(cfg)["data"]
        assert "eval_batch_size" not in data["module"] and "batch_size" in data["module"]


def test_the_cache_identity_has_the_samples_not_their_batching(configs: list[Any], tmp_path: Path) -> None:
    settings = {"dtype": "float16", "top_k": None, "features": []}
    (tmp_path / "teacher.ckpt").write_bytes(b"weights")
    identity = cache_identity(configs[0], tmp_path / "teacher.ckpt", settings)
    assert "batch_size" not in identity["data"]["module"] and "augment" not in identity["data"]["module"]
    source = identity["data"]["module"]["source"]
    assert source["val_size"] == configs[0].data.module.source.val_size and "data_dir" not in source
    assert "modality" not in identity["data"] and "teacher_data" not in identity["data"]


def without_legacy_keys(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` as a record written before the keys with a ``legacy`` value existed."""
    old = copy.deepcopy(identity)
    for key, legacy in LEGACY.items():
        parts = key.split(".")
        nodes = [old]
        for part in parts[:-1]:
            nodes = [v for n in nodes if isinstance(n, dict) for k, v in n.items() if part in ("*", k)]
        for node in nodes:
            if isinstance(node, dict) and node.get(parts[-1], object()) == legacy.value:
                del node[parts[-1]]
    return {k: v for k, v in old.items() if v != {}}


def test_a_record_from_before_each_legacy_key_upgrades_to_todays_identity(configs: list[Any]) -> None:
    for cfg in configs:
        identity = job_identity(cfg)
        old = without_legacy_keys(identity)
        assert old != identity  # every config has keys that came later (on_policy, trainer.num_nodes, ...)
        assert upgrade_identity(old) == identity


def test_a_removed_or_nowhere_key_in_an_old_record_is_dropped(configs: list[Any]) -> None:
    identity = job_identity(configs[0])
    old = copy.deepcopy(identity)
    old["data"]["monitor"] = "val/acc"
    old["teacher_outputs"]["augmented_views"] = False
    old["student"]["layers"]["preact1"] = "layer1.0"
    old["threads"] = 2
    assert upgrade_identity(old) == identity


def test_run_names_leave_out_bookkeeping_overrides() -> None:
    overrides = ["seed=1", "threads=1", "paths.log_dir=/x", "+paths.extra=/y", "~logger", "logger=csv",
                 "resume=true", "loss=kd", "loss.temperature=2", "progress_bar=false", "teacher_outputs.augmented_views=false"]
    assert run_name(overrides) == "loss.temperature=2,loss=kd,seed=1,teacher_outputs.augmented_views=false"
    assert run_name(["threads=1"]) == ""


def test_every_legacy_value_is_of_its_keys_type() -> None:
    for key, legacy in LEGACY.items():
        rule = DECLARED[key]
        if hasattr(rule, "problem"):
            assert rule.problem(legacy.value) is None, key

