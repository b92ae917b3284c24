"""W&B before torch, for a job that logs to W&B: its client imported and its service started while
the process is still small (docs/speed.md#start-up).

- ``wandb.init`` imports W&B's launch package (``wandb.sdk.launch``: staged job inputs), whose pydantic
  models look up their source through ``inspect.getmodule``, a scan of every loaded module
  (wandb/wandb#10898). After torch, Lightning and the models there are thousands, so the same imports
  take several times as long.
- ``wandb.init`` then starts W&B's service process (``wandb-core``) and waits for it to listen. Started
  in a background thread before torch is imported, the service comes up on another core while the job
  imports, and ``wandb.init`` finds it running.

W&B reads its environment once a process, when it is set up: later changes are ignored, with a
warning. Lightning's ``WandbLogger(offline=True)`` sets ``WANDB_MODE=dryrun`` just before its
``wandb.init``, so an offline logger's setting is made here first, before W&B is set up; and a W&B
variable that Hydra sets as the job starts (``hydra.job.env_set``) leaves the service to ``wandb.init``.
"""

from __future__ import annotations

import importlib
import os
import threading
from functools import cache
from typing import Any

from omegaconf import OmegaConf

from kd.launch.processes import rank_from_environment

# What a W&B logger imports: the client, and what ``wandb.init`` imports for job inputs.
WANDB_MODULES = ("wandb", "wandb.sdk.launch.inputs.internal")


def logs_to_wandb(cfg: Any) -> bool:
    """Whether the job's logger (``logger._target_``) is Lightning's WandbLogger."""
    return str(OmegaConf.select(cfg, "logger._target_", default="") or "").endswith("WandbLogger")


def start_wandb_first(cfg: Any) -> None:
    """Import W&B's client and start its service now, before torch, when this process will log to W&B:
    the job's logger is W&B's (``logger=wandb``) and this is rank zero (the other processes of a
    multi-process job log nothing). The service is left to ``wandb.init`` when Hydra is yet to set a
    W&B variable (``hydra.job.env_set``).

    A W&B release without one of WANDB_MODULES changes nothing: the job imports what it needs later.
    """
    if not logs_to_wandb(cfg) or rank_from_environment() != 0:
        return
    for name in WANDB_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return
    if any(str(name).startswith("WANDB_") for name in OmegaConf.select(cfg, "hydra.job.env_set", default=None) or {}):
        return
    if OmegaConf.select(cfg, "logger.offline", default=False) is True:
        os.environ["WANDB_MODE"] = "dryrun"  # what WandbLogger(offline=True) sets before its wandb.init
    start_service()


@cache
def start_service() -> threading.Thread:
    """Start W&B's service for this process in a background thread, once: the jobs of a multirun that
    run in this process share it, as they share what ``wandb.init`` starts."""
    thread = threading.Thread(target=_setup_wandb, name="kd-wandb-service", daemon=True)
    thread.start()
    return thread


def _setup_wandb() -> None:
    import wandb

    try:
        wandb.setup()  # settings from the environment, as wandb.init reads them; nothing starts if W&B is disabled
    except Exception:  # noqa: BLE001, S110 - wandb.init starts the service again and reports why it cannot
        pass
