"""Hydra callbacks: refuse bad config values and a run folder that holds another run before Hydra
writes anything; keep secrets out of ``.hydra/``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.jobs.sweep_check import check_sweep
from kd.jobs.validate import check_config
from kd.launch.processes import is_rank_zero
from kd.utils.secrets import redact, redact_override


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


RESUME_HINTS = {
    "hydra.run.dir": "or continue that run with resume=true or resume=<its folder>.",
    "hydra.sweep.dir": "with resume=true its jobs skip the runs that finished and continue the interrupted ones "
    "(found by config under paths.log_dir), wherever they ran.",
}


def _check_folder(folder: Path, key: str) -> None:
    if folder.exists() and not folder.is_dir():
        _refuse(f"{key}={folder} is a file, not a folder; pick another {key}.")
    if folder.is_dir() and any(folder.iterdir()):
        _refuse(
            f"{key}={folder} already holds another run ({', '.join(sorted(p.name for p in folder.iterdir())[:5])}); "
            f"kd never writes into another run's folder. Pick a new {key} (the default is a fresh time-stamped "
            f"folder), {RESUME_HINTS[key]}"
        )
    for parent in folder.parents:
        if parent.exists() and not parent.is_dir():
            _refuse(f"{key}={folder}: {parent} is a file, so the folder cannot be created; pick another {key}.")


class RunDirGuard(Callback):
    """Before Hydra creates a run folder: stop with a clear message if a config value breaks its rule
    (``kd.jobs.validate``; every job of a multirun before the first, where the sweeper lists them:
    ``kd.jobs.sweep_check``), or if the run (or sweep) folder exists and is not empty, or cannot be
    created. After Hydra saved ``.hydra/*.yaml``: redact secret values there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_config(config, list(config.hydra.overrides.task))
        except ConfigError as err:
            _refuse(str(err))
        if is_rank_zero():  # ranks 1.. of a multi-process job join rank 0's folder
            _check_folder(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_folder(Path(config.hydra.sweep.dir), "hydra.sweep.dir")
        try:
            check_sweep(config)
        except ConfigError as err:
            _refuse(str(err))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:
            return
        for path in (Path(config.hydra.runtime.output_dir) / subdir).glob("*.yaml"):
            saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            cleaned = _redacted(saved)
            if cleaned != saved:
                OmegaConf.save(OmegaConf.create(cleaned), path)


def _redacted(saved: Any) -> Any:
    """A saved ``.hydra`` file's content without secret values (in keys, override lists, dirnames)."""
    if isinstance(saved, list):  # overrides.yaml
        return [redact_override(str(o)) for o in saved]
    cleaned = redact(saved)
    hydra = cleaned.get("hydra") if isinstance(cleaned, dict) else None
    if isinstance(hydra, dict):
        overrides = hydra.get("overrides") or {}
        for kind in ("task", "hydra"):
            if overrides.get(kind):
                overrides[kind] = [redact_override(str(o)) for o in overrides[kind]]
        job = hydra.get("job") or {}
        if job.get("override_dirname"):
            job["override_dirname"] = ",".join(redact_override(p) for p in job["override_dirname"].split(","))
    return cleaned
