"""Files written whole or not at all: a temporary file beside the target, renamed over it when
complete and removed when the write fails (a full disk, an exception).

A temporary file is named after its writer (``<name>.<host>.<pid>.tmp``), so one left by a killed
process (SIGKILL, a lost node) is told from one still being written: :func:`remove_stale_temporaries`
removes those whose writer ran on this host and is gone, and kd calls it where a rerun starts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TEMPORARY = re.compile(r"^.+\.(?P<host>[^.]+)\.(?P<pid>\d+)\.tmp$")


def _host() -> str:
    return socket.gethostname().split(".")[0] or "localhost"


def temporary_path(path: str | Path) -> Path:
    """The temporary file this process writes ``path`` to before renaming it."""
    path = Path(path)
    return path.with_name(f"{path.name}.{_host()}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure remove it."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)``, then rename ``tmp`` to ``path``; ``tmp`` is removed if ``write`` fails."""
    with replaced_atomically(path) as tmp:
        write(tmp)


def write_text_atomically(path: str | Path, text: str) -> None:
    """``path`` holds ``text`` entirely, or keeps what it held."""
    write_atomically(path, lambda tmp: tmp.write_text(text))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(*roots: str | Path) -> list[Path]:
    """Remove the temporary files under ``roots`` whose writer ran on this host and no longer runs
    (killed mid-write); files of running writers and of other hosts are left. Returns those removed."""
    host, removed = _host(), []
    for root in {Path(r) for r in roots}:
        if not root.is_dir():
            continue
        for path in root.rglob("*.tmp"):
            match = TEMPORARY.match(path.name)
            if match and match["host"] == host and not _running(int(match["pid"])):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# errno values of a file system that refuses flock (Lustre mounted without -o flock, some NFS set-ups)
_NO_FLOCK = {getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOSYS", "EINVAL") if hasattr(errno, name)}


@contextlib.contextmanager
def build_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` while building a file that readers find whole (by
    rename) and check, so jobs build it once; readers need no lock. Where the file system refuses
    ``flock``, build without it and say so: two jobs may then build the same file, which costs time,
    not correctness (docs/scaling_out.md#shared-file-systems)."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in _NO_FLOCK:
                raise
            print(f"[kd] {path}: this file system refuses file locks ({error.strerror}); building without one, "
                  "so parallel jobs may build the same file (docs/scaling_out.md#shared-file-systems)", flush=True)
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
