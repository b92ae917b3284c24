"""Imports that cost less before torch: W&B's client, for a job that logs to W&B.

``wandb.init`` imports W&B's launch package (``wandb.sdk.launch``: staged job inputs), whose pydantic
models look up their source through ``inspect.getmodule``, a scan of every loaded module
(wandb/wandb#10898). After torch, Lightning and the models there are thousands, so the same imports
take several times as long (docs/speed.md#start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

from omegaconf import OmegaConf

# What a W&B logger imports: the client, and what ``wandb.init`` imports for job inputs.
WANDB_MODULES = ("wandb", "wandb.sdk.launch.inputs.internal")


def logs_to_wandb(cfg: Any) -> bool:
    """Whether the job's logger (``logger._target_``) is Lightning's WandbLogger."""
    return str(OmegaConf.select(cfg, "logger._target_", default="") or "").endswith("WandbLogger")


def import_wandb_first(cfg: Any) -> None:
    """Import W&B's client now, before torch, when the job logs to W&B (``logger=wandb``).

    A W&B release without one of WANDB_MODULES changes nothing: the job imports what it needs later.
    """
    if not logs_to_wandb(cfg):
        return
    for name in WANDB_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return
