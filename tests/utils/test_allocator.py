"""Freed tensor memory kept for reuse (kd/utils/allocator.py): glibc's mallopt switch, in a fresh process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.paths import REPO

CHILD = """
import sys
from pathlib import Path
import torch
from kd.utils.allocator import reuse_freed_memory

def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

if sys.argv[1] == "keep":
    assert reuse_freed_memory()
before = rss_mib()
tensor = torch.ones(2**24)  # 64 MiB, written
del tensor
print(rss_mib() - before)
"""


def kept_after_free(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=REPO, check=True, capture_output=True, text=True)
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_freed_tensor_stays_in_the_process_only_when_asked() -> None:
    assert kept_after_free("default") < 16  # glibc hands the 64 MiB block back at once
    assert kept_after_free("keep") > 56  # kept in the heap for the next allocation
