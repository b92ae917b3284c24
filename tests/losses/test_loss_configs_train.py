"""Every image loss config trains on the default teacher/student pair: finite loss, the student and
the loss's learned parts move, the teacher does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kd.training import build_loss, build_module
from tests.conftest import CONF_DIR


def modalities(path: Path) -> list[str]:
    declared = OmegaConf.load(path).get("modality")
    return [declared] if isinstance(declared, str) else list(declared or [])


IMAGE_LOSSES = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml") if "image" in modalities(p))


def test_the_new_methods_are_image_losses() -> None:
    assert {"fsp", "nst", "ab", "vid", "ickd", "ft", "ofd", "srd"} <= set(IMAGE_LOSSES)


@pytest.mark.parametrize("name", IMAGE_LOSSES)
def test_loss_config_trains_the_default_pair(make_cfg, name: str) -> None:
    cfg = make_cfg(f"loss={name}", base=["data=synthetic", "~logger"])  # train.yaml's teacher and student
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    student, teacher = instantiate(cfg.student.net), instantiate(cfg.teacher.net)
    loss = build_loss(cfg.loss)
    module = build_module(cfg, datamodule, student, loss, teacher)
    loss.bind_train_size(datamodule.train_size)
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.01)
    batch = next(iter(datamodule.train_dataloader()))
    before = {k: v.clone() for k, v in module.state_dict().items() if not k.startswith("teacher.")}
    teacher_before = [p.clone() for p in teacher.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        total = module.training_step(batch, 0)["loss"]
        assert torch.isfinite(total)
        total.backward()
        optimizer.step()
    after = module.state_dict()
    assert not torch.equal(before["student.fc.weight"], after["student.fc.weight"])
    for key in [k for k in before if k.startswith("loss.") and after[k].is_floating_point() and "running" not in k]:
        assert not torch.equal(before[key], after[key]), f"{name}: {key} did not train"
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, teacher.parameters(), strict=True))
