"""What a trained teacher learned from: the SHA-256 of the files its data config names (``data.json``
beside its weights), so that a teacher is not reused once those files have changed.

A trained teacher's folder is named by its config (``kd.teacher.weights.teacher_weights_dir``). That fixes
the samples of data from an installed package, but a user's files (``data=image_files``, a text or chat
file, a corpus folder) can change under the same path. The files are hashed as read from disk, not the
tensors made from them, which depend on the CPU's float arithmetic (a normalisation's mean). Teachers
trained before this record existed have none and are reused as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig

from kd.data.locations import data_path
from kd.errors import ConfigError
from kd.utils.files import write_text_atomically
from kd.utils.hashing import file_sha256

LEARNED_DATA_FILE = "data.json"
SOURCE_FILE_KEYS = ("path", "test_path", "labels_path", "root", "data_dir")  # under data.module.source


def source_files(data: DictConfig) -> dict[str, Path]:
    """The files and folders that ``data.module.source`` names (set keys of :data:`SOURCE_FILE_KEYS`),
    by config key."""
    source = data.module.get("source") or {}
    return {f"data.module.source.{key}": data_path(value, f"data.module.source.{key}")
            for key in SOURCE_FILE_KEYS if isinstance(value := source.get(key), str)}


def content_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or of a folder's files (relative paths and contents; hidden files such as
    ``.DS_Store``, which file browsers rewrite, left out); None if absent."""
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def files_sha256(data: DictConfig) -> dict[str, str]:
    """:func:`content_sha256` of each file or folder the data config names that exists, by config key."""
    return {key: sha for key, path in source_files(data).items() if (sha := content_sha256(path)) is not None}


def write_learned_data(folder: Path, data: DictConfig) -> None:
    """Record in ``folder`` what the teacher trained there learned from (before its weights are written:
    a teacher's weights always come with their record)."""
    record = {"data": data.name, "files_sha256": files_sha256(data)}
    write_text_atomically(folder / LEARNED_DATA_FILE, json.dumps(record, indent=2) + "\n")


def check_learned_data(folder: Path, data: DictConfig) -> None:
    """Refuse to reuse the teacher in ``folder`` if a file or folder it learned from has changed since;
    a folder without weights or record passes."""
    record_file = folder / LEARNED_DATA_FILE
    if not (folder / "teacher.ckpt").is_file() or not record_file.is_file():
        return
    try:
        learned = json.loads(record_file.read_text())["files_sha256"]
    except (ValueError, KeyError, TypeError):  # written whole by rename; a damaged one says nothing
        print(f"[kd] {record_file} is unreadable: the teacher there is reused without checking its data", flush=True)
        return
    now = files_sha256(data)
    changed = [key for key in learned if key in now and learned[key] != now[key]]
    if changed:
        named = ", ".join(f"{key}={data.module.source.get(key.rpartition('.')[2])}" for key in changed)
        raise ConfigError(
            f"{folder}: the teacher trained there for this config learned from other data: {named} changed "
            "since. Its students would learn from a teacher that never saw the current samples, and that "
            f"may have trained on the current validation or test ones. Delete or move {folder} to train the "
            f"teacher again on the current data, or give teacher.ckpt={folder / 'teacher.ckpt'} to keep it."
        )
