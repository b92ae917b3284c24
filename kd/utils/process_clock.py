"""How long this process has run, from the kernel's record of its start (imports included)."""

from __future__ import annotations

import os
import time
from pathlib import Path

_IMPORTED_AT = time.monotonic()


def seconds_since_process_start(stat: Path = Path("/proc/self/stat")) -> float:
    """Seconds since this process started: the clock that counts from boot, less the process's start
    time (clock ticks after boot, field 22 of ``/proc/self/stat``); where ``/proc`` is missing, seconds
    since this module was imported.

    ``btime`` of ``/proc/stat`` is whole seconds, so a start time built from it and the wall clock
    would be up to 1 s early, by a different amount after every boot.
    """
    try:
        ticks = int(stat.read_text().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return time.monotonic() - _IMPORTED_AT
