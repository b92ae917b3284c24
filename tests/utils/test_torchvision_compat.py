"""The torchvision compatibility step, both paths, each in a fresh interpreter.

Operator registrations are process-wide, so every case runs in a subprocess that loads
``kd/utils/torchvision_compat.py`` directly (importing the ``kd`` package would run the step already).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.paths import KD

MODULE = KD / "utils" / "torchvision_compat.py"
PRELUDE = f"""
import importlib.util, torch
spec = importlib.util.spec_from_file_location("compat", {str(MODULE)!r})
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
"""


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", PRELUDE + code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.slow
def test_fallback_defines_schemas_when_library_fails_to_load() -> None:
    out = run(
        """
def broken(path):
    raise OSError("could not load " + path)
print(compat.ensure_torchvision_ops(load_library=broken))
import torchvision, timm, lightning.pytorch  # the imports the trap used to break
print(hasattr(torch.ops.torchvision, "nms"), hasattr(torch.ops.torchvision, "qnms"))
try:
    torch.ops.torchvision.nms(torch.rand(3, 4), torch.rand(3), 0.5)
except RuntimeError as err:
    print("nms:", "compiled ops could not be loaded" in str(err))
print(compat.ensure_torchvision_ops(load_library=broken))
"""
    )
    assert out.splitlines() == ["defined", "True True", "nms: True", "present"]


def test_healthy_install_is_left_alone() -> None:
    out = run(
        """
calls = []
def healthy(path):  # stands in for torchvision's own _C library registering its ops
    calls.append(path)
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_keep"] = lib
print(compat.ensure_torchvision_ops(load_library=healthy))
print(len(calls), calls[0].split("/")[-1].startswith("_C"), compat._library is None)
import torchvision
print("imported")
"""
    )
    assert out.splitlines() == ["loaded", "1 True True", "imported"]


def test_ops_already_registered_means_nothing_to_do() -> None:
    out = run(
        """
lib = torch.library.Library("torchvision", "DEF")
lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
def must_not_load(path):
    raise AssertionError("loader called")
print(compat.ensure_torchvision_ops(load_library=must_not_load), compat._library is None)
"""
    )
    assert out == "present True"


@pytest.mark.slow
def test_real_install_imports_through_kd() -> None:
    out = run("import kd, torchvision, timm, lightning.pytorch\nfrom kd.utils import torchvision_compat\nprint(torchvision_compat.STATUS)")
    assert out in {"loaded", "defined"}
