"""kd.teacher_source: which teacher outputs a batch gets (cached by split and epoch, else live)."""

from __future__ import annotations

import torch

from kd.model_outputs import ModelOutputs
from kd.teacher_source import CacheEntry, TeacherSource


class FakeCache:
    """Cached outputs whose logits say which entry answered (its ``tag``) and which rows were read."""

    features: dict[str, torch.Tensor] = {}

    def __init__(self, tag: float) -> None:
        self.tag = tag

    def example_rows(self, n: int) -> tuple[torch.Tensor, None]:
        return torch.arange(n), None

    def lookup(self, index, mask=None, device="cpu", view_seed=None) -> ModelOutputs:
        return ModelOutputs(logits=torch.stack([torch.full((3,), self.tag), index.float().expand(3)], 0).T)


def live(inputs: torch.Tensor, index: torch.Tensor | None) -> ModelOutputs:
    return ModelOutputs(logits=torch.full((len(inputs), 2), -1.0))


STUDENT = ModelOutputs(logits=torch.zeros(3, 2))
INDEX, INPUTS = torch.tensor([4, 5, 6]), torch.zeros(3, 1)


def test_a_cached_split_answers_by_sample_index_and_other_splits_go_live() -> None:
    source = TeacherSource({CacheEntry("val"): FakeCache(7.0)}, live)
    out = source.outputs(INPUTS, STUDENT, INDEX, "val")
    assert out.logits[:, 0].tolist() == [7.0] * 3 and out.logits[:, 1].tolist() == [4.0, 5.0, 6.0]
    assert source.outputs(INPUTS, STUDENT, INDEX, "test").logits.eq(-1).all()  # not cached: live
    assert source.outputs(INPUTS, STUDENT, None, "val").logits.eq(-1).all()  # no sample index: live
    assert source.outputs(INPUTS, STUDENT, INDEX, None).logits.eq(-1).all()  # no split (a dry run): live


def test_augmented_views_answer_for_their_own_epoch() -> None:
    views = {CacheEntry("train", e): FakeCache(float(e)) for e in (0, 1)}
    source = TeacherSource(views, live)
    assert [source.outputs(INPUTS, STUDENT, INDEX, "train", e).logits[0, 0].item() for e in (0, 1)] == [0.0, 1.0]
    assert source.outputs(INPUTS, STUDENT, INDEX, "train", 2).logits.eq(-1).all()  # epoch 2 not cached: live
    assert [e.name for e in source.cached] == ["train@0", "train@1"] and source.entry("train") is views[CacheEntry("train", 0)]


def test_a_plain_train_entry_serves_every_epoch_and_no_teacher_gives_none() -> None:
    source = TeacherSource({CacheEntry("train"): FakeCache(3.0)})
    assert source.outputs(INPUTS, STUDENT, INDEX, "train", 5).logits[0, 0].item() == 3.0
    assert source.outputs(INPUTS, STUDENT, INDEX, "val") is None  # neither cached nor a live teacher
    assert CacheEntry("train", 4).name == "train@4" and CacheEntry("test").name == "test"
