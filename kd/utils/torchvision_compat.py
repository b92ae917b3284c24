"""Compatibility step for a torchvision wheel whose compiled ops do not match the installed torch.

The torchvision 0.28.0 wheel served on CPU-only machines is a CUDA build: its ``_C`` library
does not load on the CPU torch, and ``import torchvision`` then fails inside
``torchvision/_meta_registrations.py`` with ``operator torchvision::nms does not exist``. Because
timm, torchmetrics and so Lightning import torchvision, nothing in kd would import.

:func:`ensure_torchvision_ops` runs before those imports (``kd/__init__.py`` calls it). It first
tries to load torchvision's compiled library; only when that fails does it define the two
operator schemas torchvision's import needs (``torchvision::nms``, ``torchvision::qnms``), with
CPU kernels that raise a clear error if ever called. On a healthy install it changes nothing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Callable

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None  # keeps the fallback definitions alive
STATUS: str | None = None  # what the step did in this process (kd.launch.hardware logs it)


def _has_op(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _torchvision_library_path() -> str | None:
    """Path of torchvision's compiled ``_C`` library, found without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        pattern = os.path.join(folder, "_C*")
        found = sorted(p for p in glob.glob(pattern) if p.endswith((".so", ".pyd")))
        if found:
            return found[0]
    return None


def _unavailable(name: str) -> Callable[..., torch.Tensor]:
    def kernel(*args: object) -> torch.Tensor:
        raise RuntimeError(
            f"torchvision::{name} is unavailable: torchvision's compiled ops could not be loaded "
            "(its wheel does not match the installed torch). kd does not use detection ops; "
            "install a torchvision build that matches torch to use them."
        )

    return kernel


def _define_fallback_schemas() -> None:
    global _library
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        if not _has_op(name):
            _library.define(schema)
            _library.impl(name, _unavailable(name), "CPU")


def ensure_torchvision_ops(
    load_library: Callable[[str], None] = torch.ops.load_library,
) -> str:
    """Make ``import torchvision`` work on this torch; return what was done.

    Returns:
        ``"present"`` when the ops were already registered, ``"absent"`` when torchvision is not
        installed, ``"loaded"`` when its compiled library loaded (healthy install), or
        ``"defined"`` when the library failed to load and the schemas were defined instead.
    """
    global STATUS
    STATUS = _ensure(load_library)
    return STATUS


def _ensure(load_library: Callable[[str], None]) -> str:
    if all(_has_op(name) for name in _SCHEMAS):
        return "present"
    path = _torchvision_library_path()
    if path is None and importlib.util.find_spec("torchvision") is None:
        return "absent"
    if path is not None:
        try:
            load_library(path)
        except (OSError, RuntimeError):
            pass
        if all(_has_op(name) for name in _SCHEMAS):
            return "loaded"
    _define_fallback_schemas()
    return "defined"
