"""DistillModule: frozen teacher, gradient flow, optimiser contents, checkpoints."""

from __future__ import annotations

import functools

import pytest
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


def test_only_the_taps_the_loss_reads_keep_recording() -> None:
    module = make_module()  # both models declare stage3 and stage4; the feature term reads stage3
    assert module.student_taps.layers == {"stage3": "layer3"} and module.teacher_taps.layers == {"stage3": "layer3"}
    student_out, teacher_out = module._forward(batch()["inputs"])
    assert set(student_out.features) == {"stage3"} and set(teacher_out.features) == {"stage3"}
    hooks = sum(len(m._forward_hooks) for m in module.student.modules())
    assert hooks == 1  # the stage4 hook is gone, not just ignored


@pytest.mark.parametrize("term", ["vid", "ab", "ft"])
def test_learned_parts_of_new_methods_are_checkpointed_and_restored(term: str) -> None:
    from kd.losses.ab import ActivationBoundary
    from kd.losses.ft import FactorTransfer
    from kd.losses.vid import VariationalInformation

    def build() -> DistillModule:
        fn = {"vid": lambda: VariationalInformation(["stage3"], ["stage3"]),
              "ab": lambda: ActivationBoundary(["stage3", "stage4"], ["stage3", "stage4"]),
              "ft": lambda: FactorTransfer("stage3", "stage3")}[term]()
        return DistillModule(
            student=resnet([4, 4, 8, 8]), loss=WeightedSum({"ce": {"weight": 1.0, "fn": HardLabelCE()},
                                                           term: {"weight": 1.0, "fn": fn}}),
            optimizer=functools.partial(torch.optim.SGD, lr=0.1), example_inputs=torch.zeros(2, 1, 28, 28),
            num_classes=10, teacher=resnet([8, 8, 16, 16]), student_layers=LAYERS, teacher_layers=LAYERS,
        )

    module = build()
    learned = {k: v for k, v in module.state_dict().items() if k.startswith(f"loss.fns.{term}.")}
    assert learned, "the dry run built no learned parts"
    optimized = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in module.loss.fns[term].parameters())
    fresh = build()
    fresh.load_state_dict(module.state_dict())  # what a resume does: strict, every key present
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in learned.items())
