"""Run ``python -m kd.run`` in this process (as ``__main__``, so Hydra finds ``conf/``); for tests."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import runpy
import sys
import warnings
from pathlib import Path

# Torch threads of every test run: `KD_TEST_THREADS=2 make test` runs the suite with 2 (the default is 1).
# Tests that start two jobs at once keep threads=1 (two 2-thread jobs on 2 cores oversubscribe them).
THREADS = int(os.environ.get("KD_TEST_THREADS", "1"))
TINY_CLI = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}",
            "progress_bar=false"]


def run_cli(*argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``python -m kd.run *argv``, run in-process."""
    err, old_argv, code = io.StringIO(), sys.argv, 0
    sys.argv = ["kd.run", *argv]
    try:
        with contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*found in sys.modules.*", category=RuntimeWarning)
            runpy.run_module("kd.run", run_name="__main__", alter_sys=False)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = old_argv
    return code, err.getvalue()


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (except under ``skip``), by relative path."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and not (skip and skip in p.parents))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
