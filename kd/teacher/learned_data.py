"""What a trained teacher learned from: the SHA-256 of the files its data config names
(``kd.data.source_files``), kept beside its weights (``data.json``), so that a teacher is not reused once
those files have changed. A teacher's folder is named by its config, which fixes the samples of data from
an installed package but not of a user's files under the same path. Teachers trained before this record
existed have none and are reused as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from kd.data.source_files import changed_files, files_sha256
from kd.errors import ConfigError
from kd.utils.files import write_text_atomically

LEARNED_DATA_FILE = "data.json"


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
    if changed := changed_files(learned, data):
        raise ConfigError(
            f"{folder}: the teacher trained there for this config learned from other data: {', '.join(changed)} "
            "changed since. Its students would learn from a teacher that never saw the current samples, and that "
            f"may have trained on the current validation or test ones. Delete or move {folder} to train the "
            f"teacher again on the current data, or give teacher.ckpt={folder / 'teacher.ckpt'} to keep it."
        )
