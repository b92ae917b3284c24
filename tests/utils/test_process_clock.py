"""The process clock behind ``time/start_to_first_step_s``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kd.utils.process_clock import seconds_since_process_start
from tests.paths import REPO

CHILD = """
import time
began = time.perf_counter()
time.sleep(0.5)
from kd.utils.process_clock import seconds_since_process_start
print(seconds_since_process_start(), time.perf_counter() - began)
"""


def test_a_process_counts_from_its_own_start_and_not_before() -> None:
    before = time.monotonic()
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, check=True, capture_output=True, text=True).stdout
    outside = time.monotonic() - before
    counted, inside = map(float, out.split())
    # At least what the child timed itself (it cannot time the interpreter's start); at most what
    # the parent saw around the whole process, plus one clock tick of the kernel's start time.
    assert inside <= counted <= outside + 0.011, (inside, counted, outside)


def test_without_proc_it_counts_from_the_import_which_came_later(tmp_path: Path) -> None:
    since_import = seconds_since_process_start(tmp_path / "missing")
    assert 0 <= since_import <= seconds_since_process_start()
