"""``trainer.precision: auto``: per model kind, bf16 where the CPU (or GPU) computes it natively and it was
measured faster, decided once at start-up; and a warning where torch would emulate bf16 asked for by name
(docs/speed.md#precision-auto)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from kd.job import train
from kd.launch import hardware
from kd.launch.hardware import decide_hardware
from kd.teacher.weights import teacher_identity
from kd.utils import precision
from kd.utils.precision import apply_auto_precision

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


BF16 = {("image", "student"): "32-true", ("image", "teacher"): "bf16-mixed"}  # text, language model: bf16-mixed


@pytest.mark.parametrize(("fields", "native"), [(ZEN3, False), (ZEN4, True), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True),
                                                ({}, False)])
def test_auto_takes_bf16_only_with_bf16_instructions_and_per_model_kind(cpu, make_cfg, fields: dict, native: bool) -> None:
    cpu(fields)
    assert precision.native_bf16("auto") is native and precision.native_bf16("cpu") is native
    bases = {"image": [], "text": ["data=rotten_tomatoes", "teacher=text_tiny", "student=text_tiny"],
             "language model": ["data=lm_fortunes", "teacher=llama_tiny", "student=llama_tiny"]}
    for kind, base in bases.items():
        cfg = make_cfg(*base)
        assert cfg.trainer.precision == "auto" and cfg.teacher.precision is None
        line = apply_auto_precision(cfg)
        student, teacher = (BF16.get((kind, role), "bf16-mixed") if native else "32-true" for role in ("student", "teacher"))
        assert cfg.trainer.precision == student and precision.stage_precision(cfg, "teacher") == teacher
        # teacher.precision is written only where the teacher stage differs from the student's
        assert cfg.teacher.precision == (teacher if teacher != student else None)
        assert line is not None and line.startswith(f"[kd] precision auto (bf16 {'native' if native else 'emulated'}: ")
        assert f"trainer.precision={student} ({kind} student)" in line and "docs/speed.md#precision-auto" in line
        assert (f"teacher.precision={teacher} ({kind} teacher)" in line) is (teacher != student)
        assert apply_auto_precision(cfg) is None  # decided: nothing left to decide


def test_a_precision_given_by_name_is_kept_and_the_teacher_follows_it(cpu, make_cfg) -> None:
    cpu(SAPPHIRE_RAPIDS)
    named = make_cfg("trainer.precision=32-true")
    assert apply_auto_precision(named) is None and named.teacher.precision is None
    assert precision.stage_precision(named, "teacher") == "32-true"
    assert teacher_identity(named)["trainer"]["precision"] == "32-true"  # as before teacher.precision existed
    auto = make_cfg()
    apply_auto_precision(auto)
    assert (auto.trainer.precision, auto.teacher.precision) == ("32-true", "bf16-mixed")
    assert teacher_identity(auto)["trainer"]["precision"] == "bf16-mixed"  # another teacher than fp32's
    mixed = make_cfg("teacher.precision=32-true")
    apply_auto_precision(mixed)
    assert (mixed.trainer.precision, mixed.teacher.precision) == ("32-true", "32-true")


def test_a_bf16_gpu_decides_unless_the_job_is_pinned_to_the_cpu(cpu, make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(ZEN3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a bf16 GPU")
    decide_hardware.cache_clear()
    assert precision.native_bf16("gpu") and precision.native_bf16("auto") and not precision.native_bf16("cpu")
    assert precision.auto_precision(make_cfg(), "teacher") == "bf16-mixed"
    assert precision.auto_precision(make_cfg("trainer.accelerator=cpu"), "teacher") == "32-true"
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
    def decided(*overrides: str):
        cfg = make_cfg(*overrides, base=[f"experiment={experiment}", "~logger"])
        apply_auto_precision(cfg)
        return cfg

    cpu(ZEN4)
    assert decided().trainer.precision == "bf16-mixed"
    cpu(ZEN3)
    cfg = decided()
    assert cfg.trainer.precision == "32-true" and precision.emulated_bf16_warning(cfg) is None
    assert decided("trainer.precision=bf16-mixed").trainer.precision == "bf16-mixed"  # asked for by name: kept, with the warning below


def test_the_smollm2_teacher_loads_bfloat16_weights_only_where_bf16_is_native(cpu, make_cfg) -> None:
    cpu(ZEN4)
    cfg = make_cfg(base=["experiment=lm_smollm2", "~logger"])
    assert cfg.teacher.net.dtype == "auto" and "teacher.net.dtype=bfloat16 (language model teacher)" in apply_auto_precision(cfg)
    assert cfg.teacher.net.dtype == "bfloat16"
    cpu(ZEN3)
    cfg = make_cfg(base=["experiment=lm_smollm2", "~logger"])
    apply_auto_precision(cfg)
    assert cfg.teacher.net.dtype == "float32"
    pinned = make_cfg("teacher.net.dtype=bfloat16", base=["experiment=lm_smollm2", "~logger"])
    apply_auto_precision(pinned)
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
    assert "docs/speed.md#precision-auto" in message and "trainer.precision=32-true and teacher_outputs.precision=32-true" in message
    assert message.endswith("or trainer.precision=auto to take bf16 only where it is native and measured faster.")
    assert precision.emulated_bf16_warning(make_cfg("trainer.precision=32-true")) is None  # nothing to say
    assert OmegaConf.select(make_cfg(), "teacher_outputs.precision") is None


def test_a_run_asking_for_emulated_bf16_says_so_at_start_up(cpu, make_cfg, capsys: pytest.CaptureFixture) -> None:
    cpu(ZEN3)
    metrics = train(make_cfg("loss=kd", "teacher_outputs.precision=bf16-mixed", "teacher_outputs.cache=true"))
    out = capsys.readouterr().out
    assert "[kd] warning: teacher_outputs.precision=bf16-mixed, but AMD EPYC has no bf16" in out
    assert "[kd] hardware: cpu AMD EPYC, " in out and "bf16 emulated (no avx512_bf16 or amx_bf16)" in out
    assert "[kd] precision auto (bf16 emulated: no avx512_bf16 or amx_bf16): trainer.precision=32-true (image student); " in out
    assert metrics["hardware"]["name"] == "AMD EPYC" and metrics["hardware"]["bf16_native"] is False
    (warning,) = [line for line in out.splitlines() if line.startswith("[kd] warning: teacher_outputs.precision")]
    assert "trainer.precision=" not in warning.split(", but")[0]  # the student runs fp32
    assert out.index("[kd] warning: teacher_outputs") < out.index("[kd] computing teacher outputs")
    assert metrics["job_type"] == "distill"
