"""Precision that fits the machine: ``${bf16_if_native:...}`` for configs, read from the hardware decided once
per process (``kd.launch.hardware``), and a warning before bf16 runs emulated."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from kd.launch.hardware import BF16_FLAGS, decide_hardware

MEASURED = "measurements: docs/speed.md#bf16-where-it-is-native"
# Keys that can ask for bf16, and their fp32 value.
FP32 = {"trainer.precision": "32-true", "teacher_outputs.precision": "32-true", "teacher.net.dtype": "float32",
        "student.net.dtype": "float32"}


def native_bf16(accelerator: str = "auto") -> bool:
    """Whether the device a job runs on computes bf16 natively: a bf16-capable CUDA GPU, else the CPU's flags."""
    return decide_hardware(str(accelerator)).bf16_native


def bf16_if_native(accelerator: str = "auto", native: str = "bf16-mixed", emulated: str = "32-true") -> str:
    """``${bf16_if_native:${trainer.accelerator}}``: ``bf16-mixed`` where bf16 is native, else ``32-true``;
    ``${bf16_if_native:${trainer.accelerator},bfloat16,float32}`` for a model's ``dtype``."""
    return native if native_bf16(accelerator) else emulated


def emulated_bf16_warning(cfg: DictConfig) -> str | None:
    """A warning naming the precision and dtype keys that ask for bf16 on a device without bf16 instructions."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator") or "auto")
    keys = {key: fp32 for key, fp32 in FP32.items() if "bf16" in str(OmegaConf.select(cfg, key)).replace("bfloat", "bf")}
    if not keys or native_bf16(accelerator):
        return None
    asked = ", ".join(f"{key}={OmegaConf.select(cfg, key)}" for key in keys)
    name = decide_hardware(accelerator).name
    return (f"[kd] warning: {asked}, but {name} has no bf16 instructions ({', '.join(BF16_FLAGS[:2])}), so torch "
            f"emulates bf16 and runs slower, not faster: {MEASURED}. Set "
            f"{' and '.join(f'{key}={fp32}' for key, fp32 in keys.items())}, or "
            "trainer.precision='${bf16_if_native:auto}' to take bf16 only where it is native.")
