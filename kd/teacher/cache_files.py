"""Teacher outputs on disk: one tensor file per split, with a JSON record that validates it.

A cache folder holds ``<split>.pt`` (tensors, read with ``torch.load(weights_only=True)``) and
``<split>.json`` (what the tensors were computed from, and their file's SHA-256). An entry is used
only when its record matches what the run expects exactly (format, cache key, teacher checkpoint
checksum, data checksum, shapes) and the tensor file's checksum matches the record; anything else
is reported as stale or corrupt and the caller rebuilds it. Files are written to a temporary name
and renamed, the record last, so a killed writer never leaves an entry that validates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kd.utils.files import write_atomically, write_text_atomically
from kd.utils.hashing import file_sha256

FORMAT_VERSION = 3  # 3: top-k entries are log-probabilities plus the mass outside them; 2: teacher in the
# run's memory layout (1: inputs only)


def _paths(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}.pt", folder / f"{split}.json"


def write_entry(folder: Path, split: str, tensors: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Store ``tensors`` for ``split`` with ``record`` (plus the tensor file's checksum)."""
    folder.mkdir(parents=True, exist_ok=True)
    data_path, record_path = _paths(folder, split)
    for path in (record_path, data_path):  # an old record must not vouch for the new file mid-write
        path.unlink(missing_ok=True)
    write_atomically(data_path, lambda tmp: torch.save(dict(tensors), tmp))
    full = {**record, "format": FORMAT_VERSION, "file_sha256": file_sha256(data_path)}
    write_text_atomically(record_path, json.dumps(full, indent=2, sort_keys=True) + "\n")


def read_entry(folder: Path, split: str, expected: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The tensors of ``split`` if the entry is valid for ``expected``, else None and the reason.

    Reasons start with ``missing``, ``stale`` (the record differs from ``expected``: which fields)
    or ``corrupt`` (unreadable record or tensor file, checksum or shape mismatch).
    """
    data_path, record_path = _paths(folder, split)
    if not record_path.is_file() or not data_path.is_file():
        return None, "missing"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as err:
        return None, f"corrupt: unreadable record {record_path.name} ({err})"
    if not isinstance(record, dict):
        return None, f"corrupt: record {record_path.name} is not a JSON object"
    wanted = {**expected, "format": FORMAT_VERSION}
    changed = sorted(k for k, v in wanted.items() if record.get(k) != json.loads(json.dumps(v, default=str)))
    if changed:
        return None, f"stale: {', '.join(changed)} changed"
    if file_sha256(data_path) != record.get("file_sha256"):
        return None, f"corrupt: {data_path.name} does not match its recorded checksum"
    try:
        tensors = torch.load(data_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        return None, f"corrupt: {data_path.name} could not be read ({err})"
    problem = _shape_problem(tensors, record)
    return (None, f"corrupt: {problem}") if problem else (tensors, "valid")


def _shape_problem(tensors: Any, record: Mapping[str, Any]) -> str | None:
    if not isinstance(tensors, dict) or not isinstance(tensors.get("logits"), torch.Tensor):
        return "no logits tensor in the file"
    width = record.get("top_k") or record.get("num_classes")
    shape = tuple(tensors["logits"].shape)
    if shape[:1] != (record.get("num_samples"),) or shape[-1] != width or len(shape) not in (2, 3):
        return f"logits have shape {shape}, expected ({record.get('num_samples')}, [positions,] {width})"
    if record.get("top_k") and any(not isinstance(tensors.get(k), torch.Tensor) for k in ("top_k_index", "top_k_rest")):
        return "a top-k entry without top_k_index or top_k_rest"
    for alias, shape in (record.get("feature_shapes") or {}).items():
        feature = tensors.get("features", {}).get(alias)
        if feature is None or list(feature.shape) != [record.get("num_samples"), *shape]:
            return f"feature {alias!r} is missing or has the wrong shape"
    return None
