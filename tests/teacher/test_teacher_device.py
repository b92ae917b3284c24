"""The teacher's own passes (its output cache and augmented views; generations and answers for language
models) run on the job's device, with autocast of that device's type: decided from
``trainer.accelerator`` (``kd.launch.hardware.job_device``), never from a literal (issue 35)."""

from __future__ import annotations

import re
import warnings
from contextlib import nullcontext
from typing import Any

import pytest
import torch

import kd.job
from kd.launch.hardware import decide_hardware, job_device
from kd.teacher import outputs, views
from tests.paths import REPO


@pytest.fixture
def cuda_machine(monkeypatch: pytest.MonkeyPatch):
    """A machine whose hardware decision says CUDA (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
    decide_hardware.cache_clear()
    yield
    decide_hardware.cache_clear()


def test_the_job_device_is_this_ranks_gpu_where_the_hardware_is_cuda(cuda_machine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert job_device("gpu") == torch.device("cuda", 1) and job_device("auto") == torch.device("cuda", 1)
    assert job_device("cpu") == torch.device("cpu")  # a job pinned to the CPU stays there


def test_autocast_takes_the_type_of_the_device_it_runs_on() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch disables CUDA autocast on a machine without CUDA, and says so
        on_gpu = outputs.autocast_for("bf16-mixed", torch.device("cuda", 0))
    assert (on_gpu.device, on_gpu.fast_dtype) == ("cuda", torch.bfloat16)
    assert outputs.autocast_for("bf16-true", torch.device("cpu")).device == "cpu"
    assert isinstance(outputs.autocast_for("32-true", torch.device("cuda", 0)), nullcontext)


def test_no_teacher_pass_names_a_device_literal() -> None:
    for folder in ("kd/teacher", "kd/lm"):
        for path in sorted((REPO / folder).glob("*.py")):
            text = path.read_text()
            assert not re.search(r"autocast\(\s*['\"]cpu", text), path
            assert "device(\"cpu\")" not in text and "device('cpu')" not in text, path


def test_a_job_runs_its_teachers_passes_on_the_job_device(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job moves the teacher to ``job_device(trainer.accelerator)``; the cache and view passes then
    move every batch to the teacher's device and autocast there (a marked device stands in for a GPU)."""
    asked: list[str] = []
    monkeypatch.setattr(kd.job, "job_device", lambda accelerator: asked.append(accelerator) or torch.device("cpu"))
    marked, seen = torch.device("cpu", 0), set()  # equal to no unmarked torch.device("cpu")
    for module in (outputs, views):
        real_move, real_cast = module.to_device, module.autocast_for

        def move(inputs: Any, device: torch.device, real: Any = real_move) -> Any:
            seen.add(("inputs", device))
            return real(inputs, device)

        def cast(precision: Any, device: torch.device, real: Any = real_cast) -> Any:
            seen.add(("autocast", device))
            return real(precision, device)

        monkeypatch.setattr(module, "model_device", lambda model: marked)
        monkeypatch.setattr(module, "to_device", move)
        monkeypatch.setattr(module, "autocast_for", cast)
    metrics = kd.job.train(make_cfg("loss=kd", "teacher_outputs.cache=true", "data.module.augment=true",
                                    "teacher_outputs.precision=bf16-mixed", "trainer.accelerator=cpu"))
    assert asked == ["cpu"] and metrics["job_type"] == "distill"
    assert seen == {("inputs", marked), ("autocast", marked)}
