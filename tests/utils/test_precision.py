"""Precision that fits the machine: bf16 where the CPU (or GPU) computes it natively, and a warning where torch
would emulate it (docs/speed.md)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from kd.job import train
from kd.launch import hardware
from kd.launch.hardware import decide_hardware
from kd.utils import precision

ZEN3 = {"model name": "AMD EPYC", "flags": "fpu sse2 avx avx2 fma"}  # family 25 model 1: no bf16 instructions
ZEN4 = {"model name": "AMD EPYC", "flags": "fpu avx avx2 avx512f avx512_bf16"}
SAPPHIRE_RAPIDS = {"model name": "Intel(R) Xeon(R) Platinum 8480+", "flags": "avx2 avx512f amx_bf16 amx_tile"}
GRAVITON3 = {"model name": "", "Features": "fp asimd sve bf16 i8mm"}  # aarch64 /proc/cpuinfo names them Features


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """``cpu(fields)``: /proc/cpuinfo as ``fields``, and no CUDA (each call decides the hardware anew)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def use(fields: dict) -> None:
        monkeypatch.setattr(hardware, "cpuinfo", lambda: fields)
        decide_hardware.cache_clear()

    yield use
    decide_hardware.cache_clear()


@pytest.mark.parametrize(("fields", "native"), [(ZEN3, False), (ZEN4, True), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True),
                                                ({}, False)])
def test_bf16_is_native_only_with_bf16_instructions(cpu, fields: dict, native: bool) -> None:
    cpu(fields)
    assert precision.native_bf16("auto") is native and precision.native_bf16("cpu") is native
    assert precision.bf16_if_native("auto") == ("bf16-mixed" if native else "32-true")


def test_a_bf16_gpu_decides_unless_the_job_is_pinned_to_the_cpu(cpu, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(ZEN3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a bf16 GPU")
    decide_hardware.cache_clear()
    assert precision.bf16_if_native("gpu") == precision.bf16_if_native("auto") == "bf16-mixed"
    assert precision.bf16_if_native("cpu") == "32-true"
    gpu = decide_hardware("gpu")
    assert gpu.line().startswith(f"[kd] hardware: cuda a bf16 GPU, {gpu.cores} cores, bf16 native (the GPU supports bf16)")


def test_the_hardware_is_decided_once_per_process(cpu, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(SAPPHIRE_RAPIDS | {"cpu family": "6", "model": "143"})
    first = decide_hardware("cpu")
    assert first.line().startswith("[kd] hardware: cpu Intel(R) Xeon(R) Platinum 8480+ (family 6 model 143), ")
    assert first.bf16_basis == "amx_bf16" and first.record()["bf16_native"] is True
    monkeypatch.setattr(hardware, "cpuinfo", lambda: ZEN3)  # a later probe would see another CPU; the decision stands
    assert decide_hardware("cpu") is first and precision.native_bf16("cpu") is True


@pytest.mark.parametrize("experiment", ["rt_minilm", "lm_smollm2"])
def test_bf16_experiments_take_bf16_only_where_it_is_native(cpu, make_cfg, experiment: str) -> None:
    cpu(ZEN4)
    assert make_cfg(base=[f"experiment={experiment}", "~logger"]).trainer.precision == "bf16-mixed"
    cpu(ZEN3)
    cfg = make_cfg(base=[f"experiment={experiment}", "~logger"])
    assert cfg.trainer.precision == "32-true" and precision.emulated_bf16_warning(cfg) is None
    assert make_cfg("trainer.precision=bf16-mixed", base=[f"experiment={experiment}", "~logger"]).trainer.precision \
        == "bf16-mixed"  # asked for by name: kept, with the warning below


def test_the_smollm2_teacher_loads_bfloat16_weights_only_where_bf16_is_native(cpu, make_cfg) -> None:
    cpu(ZEN4)
    assert make_cfg(base=["experiment=lm_smollm2", "~logger"]).teacher.net.dtype == "bfloat16"
    cpu(ZEN3)
    cfg = make_cfg(base=["experiment=lm_smollm2", "~logger"])
    assert cfg.teacher.net.dtype == "float32" and precision.bf16_if_native("cpu", "bfloat16", "float32") == "float32"
    pinned = make_cfg("teacher.net.dtype=bfloat16", base=["experiment=lm_smollm2", "~logger"])
    message = precision.emulated_bf16_warning(pinned)
    assert message is not None and message.startswith("[kd] warning: teacher.net.dtype=bfloat16, but AMD EPYC")
    assert "Set teacher.net.dtype=float32," in message


def test_the_warning_names_each_key_that_asks_for_emulated_bf16(cpu, make_cfg) -> None:
    cfg = make_cfg("trainer.precision=bf16-mixed", "teacher_outputs.precision=bf16-true")
    cpu(ZEN4)
    assert precision.emulated_bf16_warning(cfg) is None
    cpu(ZEN3)
    message = precision.emulated_bf16_warning(cfg)
    assert message is not None and message.startswith("[kd] warning: trainer.precision=bf16-mixed, "
                                                      "teacher_outputs.precision=bf16-true, but AMD EPYC has no bf16")
    assert "docs/speed.md#bf16-where-it-is-native" in message and "trainer.precision=32-true and teacher_outputs.precision=32-true" in message
    assert precision.emulated_bf16_warning(make_cfg()) is None  # 32-true: nothing to say
    assert OmegaConf.select(make_cfg(), "teacher_outputs.precision") is None


def test_a_run_asking_for_emulated_bf16_says_so_at_start_up(cpu, make_cfg, capsys: pytest.CaptureFixture) -> None:
    cpu(ZEN3)
    metrics = train(make_cfg("loss=kd", "teacher_outputs.precision=bf16-mixed", "teacher_outputs.cache=true"))
    out = capsys.readouterr().out
    assert "[kd] warning: teacher_outputs.precision=bf16-mixed, but AMD EPYC has no bf16" in out
    assert "[kd] hardware: cpu AMD EPYC, " in out and "bf16 emulated (no avx512_bf16 or amx_bf16)" in out
    assert metrics["hardware"]["name"] == "AMD EPYC" and metrics["hardware"]["bf16_native"] is False
    assert "trainer.precision=" not in out.split("[kd] warning: ")[1].split(", but")[0]  # the student runs fp32
    assert out.index("[kd] warning: teacher_outputs") < out.index("[kd] computing teacher outputs")
    assert metrics["job_type"] == "distill"
