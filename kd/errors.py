"""Errors kd reports in one paragraph, without a traceback: bad input, and runs that cannot go on."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file",
}


class ConfigError(ValueError):
    """A config value, override or input file is wrong; the message names it and the fix."""


class RunError(RuntimeError):
    """A run stopped for a reason found while it ran (non-finite loss, full disk); the message says
    what happened, which checkpoint is the last good one and how to go on."""


def free_space(path: Path) -> str:
    """Free space on the disk holding ``path`` (its nearest existing parent), as text."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return f"{shutil.disk_usage(path).free / 2**20:.0f} MiB free on the disk holding {path}"
    except OSError:
        return "free space unknown"


RUN_ADVICE = "Free space, or put outputs elsewhere with paths.log_dir=<folder> (or hydra.run.dir=<folder>)."


def describe_write_error(err: OSError, output_dir: Path, advice: str = RUN_ADVICE) -> str | None:
    """One paragraph for an OSError from writing outputs (full disk, read-only, no permission), else None;
    ``advice``: what to do (a run's by default)."""
    reason = DISK_ERRNOS.get(err.errno or 0)
    if reason is None:
        return None
    where = err.filename or output_dir
    target = where if err.filename else f"in {output_dir}"
    return f"could not write {target}: {reason} ({free_space(Path(str(where)))}). {advice}"
