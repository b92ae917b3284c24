"""The in-memory teacher-logit cache: same results as recomputing, and refused where it would be wrong."""

from __future__ import annotations

import pytest
import torch

from kd.errors import ConfigError
from kd.run import train
from kd.teacher_logits import TeacherLogitCache


def test_cache_returns_whole_batches_only() -> None:
    cache = TeacherLogitCache(num_samples=6, num_classes=3)
    assert cache.lookup(torch.tensor([0, 1])) is None
    cache.store(torch.tensor([0, 1]), torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.bfloat16))
    assert torch.equal(cache.lookup(torch.tensor([1, 0])), torch.tensor([[4.0, 5.0, 6.0], [1.0, 2.0, 3.0]]))
    assert cache.lookup(torch.tensor([1, 2])) is None and (cache.hits, cache.misses) == (1, 2)


def test_cached_run_equals_recomputed_run(make_cfg, capsys, monkeypatch) -> None:
    common = ["loss=kd", "trainer.max_epochs=2", "trainer.limit_train_batches=null"]
    recomputed = train(make_cfg(*common, "cache_teacher_logits=false"))
    lookups: list[bool] = []
    original = TeacherLogitCache.lookup

    def counting_lookup(self: TeacherLogitCache, index: torch.Tensor) -> torch.Tensor | None:
        found = original(self, index)
        lookups.append(found is not None)
        return found

    monkeypatch.setattr(TeacherLogitCache, "lookup", counting_lookup)
    cached = train(make_cfg(*common, "cache_teacher_logits=true"))
    assert "teacher logits cached in memory" in capsys.readouterr().out
    assert lookups == [False] * 8 + [True] * 8  # 512 synthetic images, batch 64: epoch 2 is all hits
    for key in ("train/loss", "train/loss/kd", "val/acc", "test/acc", "test/agreement"):
        assert cached[key] == pytest.approx(recomputed[key], rel=1e-6, abs=1e-7), key


def test_cache_is_refused_for_augmented_inputs_and_feature_losses(make_cfg, capsys) -> None:
    with pytest.raises(ConfigError, match=r"randomly augmented \(data.module.augment=true\)"):
        train(make_cfg("loss=kd", "data.module.augment=true", "cache_teacher_logits=true"))
    with pytest.raises(ConfigError, match="read teacher features"):
        train(make_cfg("loss=feature", "cache_teacher_logits=true"))
    train(make_cfg("loss=feature"))  # auto: recomputes, and says why
    assert "teacher logits recomputed every epoch" in capsys.readouterr().out
