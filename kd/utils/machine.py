"""The machine a benchmark or an export ran on: CPU model, the SIMD flags that change speed and precision, cores, versions."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

# Flags that decide which kernels run: AVX-512 and its bf16 extension (AMD EPYC, Intel), AMX (Intel Xeon).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where it does not exist)."""
    path = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in (path.read_text() if path.is_file() else "").splitlines():
        if not line.strip():
            break
        key, _, value = (part.strip() for part in line.partition(":"))
        fields.setdefault(key, value)
    return fields


def machine() -> dict[str, Any]:
    """CPU model (family/model), flags, usable cores and torch version: stored with every result."""
    import torch  # its callers (benchmarks, export) have it loaded; kd's config check must not wait for it

    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    name = info.get("model name") or platform.processor() or platform.machine()
    return {
        "cpu": f"{name} (family {info.get('cpu family', '?')} model {info.get('model', '?')})",
        "cpu_short": short_name(name, info.get("cpu family", ""), info.get("model", "")),
        "flags": {flag: flag in flags for flag in FLAGS},
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
    }


def short_name(model: str, family: str = "", model_number: str = "") -> str:
    """A file-name slug of the CPU: ``Intel(R) Xeon(R) Platinum 8480+`` -> ``intel-xeon-platinum-8480``,
    ``AMD EPYC 9R14`` -> ``amd-epyc-9r14``. A name without a model number (``AMD EPYC`` in cloud VMs covers
    AVX2-only and AVX-512 parts alike) takes the family and model: ``amd-epyc-f25m1``."""
    name = re.sub(r"\((R|TM)\)|\bCPU\b|\bProcessor\b|\d+-Core|@.*$", " ", model, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or platform.machine()
    return f"{slug}-f{family}m{model_number}" if family and model_number and not re.search(r"\d", slug) else slug
