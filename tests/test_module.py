"""DistillModule: frozen teacher, gradient flow, optimiser contents, checkpoints."""

from __future__ import annotations

import functools

import timm
import torch
from torch import nn

from kd.losses.ce import HardLabelCE
from kd.losses.feature import FeatureHint
from kd.losses.kd import SoftTargetKL
from kd.losses.weighted_sum import WeightedSum
from kd.module import DistillModule

LAYERS = {"stage3": "layer3", "stage4": "layer4"}


def resnet(channels: list[int]) -> nn.Module:
    return timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=channels, in_chans=1, num_classes=10)


def make_module(channels_last: bool = False) -> DistillModule:
    loss = WeightedSum(
        {
            "ce": {"weight": 0.5, "fn": HardLabelCE()},
            "kd": {"weight": 0.5, "fn": SoftTargetKL(4.0)},
            "feature": {"weight": 1.0, "fn": FeatureHint("stage3", "stage3")},
        }
    )
    return DistillModule(
        student=resnet([4, 4, 8, 8]),
        loss=loss,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        example_inputs=torch.zeros(2, 1, 28, 28),
        num_classes=10,
        teacher=resnet([8, 8, 16, 16]),
        student_layers=LAYERS,
        teacher_layers=LAYERS,
        channels_last=channels_last,
    )


def batch(n: int = 8) -> dict[str, torch.Tensor]:
    return {"inputs": torch.randn(n, 1, 28, 28), "labels": torch.randint(0, 10, (n,)), "index": torch.arange(n)}


def test_teacher_stays_frozen_and_in_eval_mode() -> None:
    module = make_module()
    module.train()
    assert module.student.training and not module.teacher.training
    assert all(not m.training for m in module.teacher.modules())
    assert not any(p.requires_grad for p in module.teacher.parameters())
    module.eval()
    module.train(True)
    assert not module.teacher.training


def test_connector_is_built_before_the_optimizer_and_optimized() -> None:
    module = make_module()
    connector = module.loss.fns["feature"].connector
    assert connector is not None and connector[0].weight.shape == (16, 8, 1, 1)
    optimized = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert {id(p) for p in connector.parameters()} <= optimized
    assert {id(p) for p in module.student.parameters()} <= optimized
    assert not {id(p) for p in module.teacher.parameters()} & optimized


def test_gradients_reach_student_and_connector_never_teacher() -> None:
    module = make_module(channels_last=True)
    module.train()
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    student_out, teacher_out = module._forward(batch()["inputs"])
    total, parts = module.loss(student_out, teacher_out, torch.randint(0, 10, (8,)))
    assert set(parts) == {"ce", "kd", "feature"}
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.loss.parameters())
    assert module.student.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())
    for key, value in module.teacher.state_dict().items():  # BN statistics untouched too
        torch.testing.assert_close(value, teacher_before[key])


def test_checkpoint_leaves_out_teacher_and_loads_back() -> None:
    module = make_module()
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    keys = checkpoint["state_dict"].keys()
    assert not any(k.startswith("teacher.") for k in keys)
    assert any(k.startswith("student.") for k in keys) and any(k.startswith("loss.") for k in keys)
    fresh = make_module()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])  # strict: teacher keys were put back
    for key, value in module.student.state_dict().items():
        torch.testing.assert_close(fresh.student.state_dict()[key], value)


def test_forward_returns_student_logits() -> None:
    module = make_module().eval()
    x = batch()["inputs"]
    torch.testing.assert_close(module(x), module.student(x))
