"""The machine a job runs on, decided once per process and logged by the entry point.

:func:`decide_hardware` looks once at the device (a CUDA GPU, else the CPU), the cores this process
may use, whether bf16 arithmetic is native there, and how torchvision's operators were made
importable (``kd.utils.torchvision_compat``, run just before torchvision is first imported, by
Lightning, timm or torchmetrics). ``trainer.precision: auto`` reads the bf16 decision
(``kd.utils.precision``); ``python -m kd.run`` prints :meth:`Hardware.line` and ``metrics.json``
keeps :meth:`Hardware.record`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from kd.utils.machine import cpuinfo

# CPU flags of native bf16 arithmetic: AVX-512 BF16, AMX, Arm's bf16 (which CPUs have them: docs/speed.md).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class Hardware:
    """What one process runs on: the device, its name, usable cores, native bf16 and torchvision's ops."""

    device: str  # "cuda" or "cpu"
    name: str  # the GPU's or the CPU's model name
    family_model: str  # a CPU's family and model numbers ("family 6 model 207"); "" for a GPU
    cores: int  # CPU cores this process may run on
    bf16_native: bool
    bf16_basis: str  # what decided it: the CPU flags found, or the GPU's bf16 support
    torchvision_ops: str  # kd.utils.torchvision_compat: present, loaded, defined (stubs) or absent

    def line(self) -> str:
        """The start-up line: ``[kd] hardware: cpu Intel Xeon ... (2 cores), bf16 native (amx_bf16)``."""
        bf16 = f"bf16 native ({self.bf16_basis})" if self.bf16_native else f"bf16 emulated ({self.bf16_basis})"
        ops = "" if self.torchvision_ops in ("present", "loaded", "absent") else (
            "; torchvision's compiled ops did not load, so its nms ops are stubs (kd uses none)")
        name = f"{self.name} ({self.family_model})" if self.family_model else self.name
        return f"[kd] hardware: {self.device} {name}, {self.cores} cores, {bf16}{ops}"

    def record(self) -> dict[str, Any]:
        """The decision as plain data, for ``metrics.json``."""
        return asdict(self)


def job_hardware(cfg: Any) -> Hardware:
    """The hardware of the job ``cfg`` describes (its ``trainer.accelerator``)."""
    return decide_hardware(str(cfg.trainer.get("accelerator") or "auto"))


def job_device(accelerator: str = "auto") -> Any:
    """The ``torch.device`` this process trains on (``trainer.accelerator``): its GPU (``LOCAL_RANK``) where
    the hardware is a CUDA GPU, else the CPU. The teacher's own passes (cache, views, generations) run there."""
    import torch

    hardware = decide_hardware(accelerator)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if hardware.device == "cuda" else torch.device("cpu")


@cache
def decide_hardware(accelerator: str = "auto") -> Hardware:
    """The hardware of a job on ``accelerator`` (``trainer.accelerator``), decided once per process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    import torch  # here, not at import: the config check runs before torch is needed (docs/speed.md#start-up)

    from kd.utils import torchvision_compat

    ops = torchvision_compat.STATUS or "not checked"

    if str(accelerator) in GPU_ACCELERATORS and torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported()
        basis = "the GPU supports bf16" if native else "the GPU lacks bf16"
        return Hardware("cuda", torch.cuda.get_device_name(), "", cores, native, basis, ops)
    info = cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    found = [flag for flag in BF16_FLAGS if flag in flags]
    basis = ", ".join(found) if found else f"no {' or '.join(BF16_FLAGS[:2])}"
    name = info.get("model name") or platform.processor() or platform.machine()
    family_model = f"family {info['cpu family']} model {info['model']}" if "cpu family" in info and "model" in info else ""
    return Hardware("cpu", name, family_model, cores, bool(found), basis, ops)
