"""Keep secrets (W&B keys, hub tokens, passwords) out of everything a run saves or logs.

A config key or override whose last name contains ``api_key``, ``secret``, ``password`` or
``credential``, or ends in ``token`` (``hf_token``; not ``tokenizer``, not ``pad_token_id``), has its value replaced by ``<redacted>`` in saved configs, job records, W&B
config, run names and tags, and in ``sys.argv`` (which W&B records). Secrets belong in environment
variables (``WANDB_API_KEY``, ``HF_TOKEN``), which kd never writes anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SECRET_NAME = re.compile(r"(api[_-]?key|secret|passw(or)?d|credential|token$)", re.IGNORECASE)
REDACTED = "<redacted>"


def is_secret_key(key: str) -> bool:
    """Whether the last part of a dotted key names a secret (``logger.api_key``, ``+teacher.hf_token``)."""
    return bool(SECRET_NAME.search(str(key).rsplit(".", 1)[-1]))


def redact(value: Any) -> Any:
    """A copy of a plain container (dicts, lists) with the values of secret keys replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_override(override: str) -> str:
    """``key=value`` with the value replaced when ``key`` names a secret; other strings unchanged."""
    key, sep, _ = override.partition("=")
    return f"{key}{sep}{REDACTED}" if sep and is_secret_key(key.lstrip("+~")) else override


def save_config(cfg: DictConfig, path: Path) -> None:
    """``cfg`` resolved (unresolved where resolving fails), with secret values redacted."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - the config itself may be what failed
        plain = OmegaConf.to_container(cfg, resolve=False)
    OmegaConf.save(OmegaConf.create(redact(plain)), path)
