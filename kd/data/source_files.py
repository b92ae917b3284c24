"""The files a data config reads, and the SHA-256 of what is in them now.

A data config names files (``data.module.source.path``, a corpus ``root``, Fashion-MNIST's
``data_dir``), not their content: a user's images or texts can change under the same path. A trained
teacher (``kd.teacher.learned_data``) and a run's ``job.json`` (``kd.jobs.resume``) keep these hashes, so
that neither is reused for data it never saw. The files are hashed as read from disk, not the tensors
made from them, which depend on the CPU's float arithmetic (a normalisation's mean).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kd.data.locations import data_path
from kd.utils.hashing import file_sha256

SOURCE_FILE_KEYS = ("path", "test_path", "labels_path", "root", "data_dir")  # under data.module.source


def source_files(data: DictConfig) -> dict[str, Path]:
    """The files and folders that ``data.module.source`` names (set keys of :data:`SOURCE_FILE_KEYS`),
    by config key."""
    source = data.module.get("source") or {}
    return {f"data.module.source.{key}": data_path(value, f"data.module.source.{key}")
            for key in SOURCE_FILE_KEYS if isinstance(value := source.get(key), str)}


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001 - size and time key the cache
    return file_sha256(path)


def _file_hash(path: Path) -> str:
    """A file's SHA-256, read once a process while its size and modification time stay the same."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def content_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or of a folder's files (relative paths and contents; hidden files such as
    ``.DS_Store``, which file browsers rewrite, left out); None if absent."""
    if path.is_file():
        return _file_hash(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_hash(file)}\n".encode())
    return digest.hexdigest()


def files_sha256(data: DictConfig) -> dict[str, str]:
    """:func:`content_sha256` of each file or folder the data config names that exists, by config key."""
    return {key: sha for key, path in source_files(data).items() if (sha := content_sha256(path)) is not None}


def changed_files(recorded: Any, data: DictConfig) -> list[str]:
    """``key=value`` of the files in a ``recorded`` :func:`files_sha256` whose content differs now (keys
    the data no longer names, or a record that is not a mapping, say nothing)."""
    if not isinstance(recorded, dict):
        return []
    now = files_sha256(data)
    return [f"{key}={data.module.source.get(key.rpartition('.')[2])}" for key, sha in recorded.items()
            if key in now and now[key] != sha]
