"""Freed tensor memory kept in the process for the next step, through glibc's own switch (``mallopt``).

By default glibc's ``malloc`` serves every block over 32 MiB (and, until its threshold adapts, over
128 KiB) with a fresh ``mmap`` and hands it back to the system when it is freed, so a training step
page-faults and zeroes its large tensors anew every time: 2.8 GB a step for the cut SmolLM2
student's full-vocabulary logits (docs/speed.md#freed-memory). With ``M_MMAP_MAX=0`` every block
comes from the heap, and with a 2 GiB ``M_TRIM_THRESHOLD`` the heap keeps what was freed; the
process's memory then stays at its peak instead of shrinking between steps.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the heap's top kept (mallopt takes an int)


def reuse_freed_memory() -> bool:
    """Make this process's ``malloc`` keep freed memory for reuse (see the module doc); False where
    the C library is not glibc or refuses, and nothing changed."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
