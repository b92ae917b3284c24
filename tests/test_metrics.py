"""Stage metrics (accuracy, top-k, calibration, fidelity) and deployment cost, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kd.cost import latency_ms, like_parameters, size_on_disk_mb
from kd.metrics import StageMetrics
from kd.model_outputs import ModelOutputs


def test_stage_metrics_match_hand_computation() -> None:
    student = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 0.5, 0.0], [1.0, 0.0, 0.0, 2.0]])
    teacher = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    labels = torch.tensor([1, 1, 3])
    metrics = StageMetrics(num_classes=4, top_k=5, calibration_bins=10)
    assert metrics.top_k == 3  # at most num_classes - 1
    metrics.update(student, labels, ModelOutputs(teacher))
    values = {k: v.compute().item() for k, v in metrics.loggable("val", ModelOutputs(teacher)).items()}
    assert values["val/acc"] == pytest.approx(2 / 3)
    assert values["val/acc_top3"] == pytest.approx(1.0)
    assert values["val/agreement"] == pytest.approx(2 / 3)  # argmax 0,1,3 vs teacher 0,2,3
    assert values["val/teacher_acc"] == pytest.approx(1 / 3)
    p_s, p_t = student.softmax(-1), teacher.softmax(-1)
    kl = [sum(pt * math.log(pt / ps) for pt, ps in zip(row_t, row_s, strict=True)) for row_t, row_s in zip(p_t.tolist(), p_s.tolist(), strict=True)]
    assert values["val/kl"] == pytest.approx(sum(kl) / 3, rel=1e-5)
    confidence, correct = p_s.max(-1).values.tolist(), [0.0, 1.0, 1.0]
    bins: dict[int, list[int]] = {}
    for i, c in enumerate(confidence):
        bins.setdefault(min(int(c * 10), 9), []).append(i)
    ece = sum(abs(sum(confidence[i] for i in b) - sum(correct[i] for i in b)) for b in bins.values()) / 3
    assert values["val/ece"] == pytest.approx(ece, rel=1e-5)


def test_binary_tasks_have_no_top_k_and_no_teacher_means_no_fidelity_metrics() -> None:
    metrics = StageMetrics(num_classes=2)
    metrics.update(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]), None)
    assert set(metrics.loggable("test", None)) == {"test/acc", "test/ece"}


def test_size_on_disk_and_latency_are_measured() -> None:
    model = nn.Linear(1000, 100)
    assert size_on_disk_mb(model) == pytest.approx(100_100 * 4 / 1e6, rel=0.02)
    calls = []
    assert latency_ms(lambda x: calls.append(x), 1, repeats=5, warmup=2) >= 0
    assert len(calls) == 7


def test_latency_inputs_take_the_dtype_of_a_64_true_or_bf16_true_model() -> None:
    images, tokens = torch.rand(2, 3), torch.tensor([[1, 2]])
    double = nn.Linear(3, 2).double()
    cast = like_parameters(images, double)
    assert cast.dtype == torch.float64 and torch.equal(cast, images.double())
    double(cast)  # float32 inputs would raise: "mat1 and mat2 must have the same dtype"
    text = like_parameters({"input_ids": tokens, "mask": torch.ones(1, 2)}, nn.Linear(3, 2).bfloat16())
    assert text["input_ids"].dtype == torch.int64 and text["mask"].dtype == torch.bfloat16  # token ids keep theirs
    assert like_parameters(images, nn.Linear(3, 2)) is images
    assert like_parameters(images, nn.ReLU()) is images  # no parameters: nothing to match
