"""Files written whole or not at all: a temporary file beside the target, renamed over it when
complete and removed when the write fails (a full disk, an exception), so no ``*.tmp`` stays behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def replaced_atomically(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure remove it."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
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
