"""Content hashes: of plain config data (run and cache keys), of files, and of tensors (data fingerprints)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from kd.utils.secrets import redact


def identity_hash(identity: Any, length: int) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``identity`` (plain JSON-able data, key order ignored)."""
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 over the shapes, dtypes and bytes of ``tensors`` (a data fingerprint)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if tensor.numel():  # an empty tensor adds no bytes
            # numpy's stubs give ndarray __buffer__ only for Python >= 3.12; it is a buffer on 3.11 too
            digest.update(memoryview(tensor.view(torch.uint8).numpy()).cast("B"))  # type: ignore[arg-type]
    return digest.hexdigest()


def config_identity(node: Any) -> Any:
    """``node`` (a config or plain data) resolved to plain data with secret values redacted: what a
    run's, a trained teacher's or a cache entry's key hashes (``kd.config.identities`` picks the keys)."""
    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return redact(plain)
