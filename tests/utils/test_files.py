"""Atomic writes (kd/utils/files.py): a write that fails leaves neither a temporary file nor a half file; the
build lock, and file systems that refuse it."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kd.teacher.cache_files import write_entry
from kd.utils import files
from kd.utils.files import remove_stale_temporaries, temporary_path, write_atomically, write_text_atomically


def disk_full(path: Path) -> None:
    path.write_bytes(b"half a file")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_text_atomically(target, "old")
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, disk_full)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_cache_entry_that_hits_a_full_disk_leaves_no_pt_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_save(obj: object, path: Path) -> None:
        disk_full(Path(path))

    monkeypatch.setattr(torch, "save", full_save)
    with pytest.raises(OSError, match="No space left"):
        write_entry(tmp_path / "cache", "train", {"logits": torch.zeros(2)}, {"split": "train"})
    assert list((tmp_path / "cache").iterdir()) == []  # no .pt, no .pt.tmp, no record


def test_only_the_temporaries_of_writers_gone_from_this_host_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname().split(".")[0]
    left = tmp_path / "runs/0" / f"metrics.json.{host}.{int(dead.stdout)}.tmp"  # its writer has exited
    own = temporary_path(tmp_path / "teacher.ckpt")  # this process: still writing
    elsewhere = tmp_path / f"job.json.other-node.{int(dead.stdout)}.tmp"  # another machine's writer
    for path in (left, own, elsewhere):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    assert remove_stale_temporaries(tmp_path) == [left]
    assert not left.exists() and own.exists() and elsewhere.exists()


def test_a_file_system_without_locks_builds_anyway_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(handle: object, operation: int) -> None:  # Lustre mounted without -o flock
        raise OSError(errno.ENOLCK, "No locks available")

    built = []
    with files.build_lock(tmp_path / ".lock"):
        built.append("locked")
    monkeypatch.setattr(files.fcntl, "flock", refuse)
    with files.build_lock(tmp_path / ".lock"):
        built.append("unlocked")
    assert built == ["locked", "unlocked"]
    assert "this file system refuses file locks (No locks available); building without one" in capsys.readouterr().out

    def broken(handle: object, operation: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.fcntl, "flock", broken)
    with pytest.raises(OSError, match="Input/output error"), files.build_lock(tmp_path / ".lock"):
        built.append("never")
    assert built == ["locked", "unlocked"]
