"""Per-job bookkeeping for single runs and multiruns: run names, W&B grouping, failure records."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from kd.config.identities import run_name
from kd.errors import ConfigError, RunError, describe_write_error
from kd.jobs.job_record import FAILURE_FILE, job_identity, job_key
from kd.jobs.resume import latest_checkpoint
from kd.utils.files import write_text_atomically
from kd.utils.secrets import redact_override, save_config

MAX_TAG_LENGTH = 64  # W&B's limit


def describe_job(cfg: DictConfig) -> bool:
    """Fill ``cfg.run`` (name, group, tags) from Hydra's job info; return whether this is a multirun job.

    name: the job's overrides (``loss=kd,loss.temperature=2``) without bookkeeping keys
    (``kd.config.identities.run_name``) or ``defaults``; group: the multirun
    folder (all jobs of one sweep share it) or, for a single run, the data set's name; tags: the
    overrides themselves.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = [redact_override(o) for o in hydra_cfg.overrides.task]
    with open_dict(cfg):
        cfg.hydra_choices = dict(hydra_cfg.runtime.choices)
        cfg.run.name = cfg.run.get("name") or run_name(overrides) or "defaults"
        if not cfg.run.get("group"):
            sweep_dir = Path(hydra_cfg.sweep.dir)
            cfg.run.group = f"sweep-{sweep_dir.parent.name}-{sweep_dir.name}" if multirun else cfg.data.name
        cfg.run.tags = [*cfg.run.get("tags", []), *(o[:MAX_TAG_LENGTH] for o in overrides)]
        cfg.run.overrides = overrides
    return multirun


def redact_argv() -> None:
    """Replace secret override values in ``sys.argv`` (W&B records the command line)."""
    sys.argv[:] = [redact_override(arg) for arg in sys.argv]


def root_cause(err: BaseException) -> BaseException:
    """The kd error (ConfigError, RunError) that Hydra's ``instantiate`` wrapped, if any; else ``err``."""
    from hydra.errors import InstantiationException

    cause: BaseException | None = err
    while isinstance(cause, InstantiationException):
        cause = cause.__cause__
    return cause if isinstance(cause, ConfigError | RunError) else err


def as_run_error(err: BaseException, cfg: DictConfig) -> BaseException:
    """Full disk or unwritable outputs become a :class:`RunError`; run errors get the last good checkpoint."""
    output_dir = Path(cfg.paths.output_dir)
    if isinstance(err, OSError) and (message := describe_write_error(err, output_dir)):
        err = RunError(message)
    if isinstance(err, RunError):
        last = latest_checkpoint(output_dir)
        where = f"last good checkpoint: {last}" if last else "no checkpoint was written yet"
        err = RunError(f"{err} ({where}; `resume=true` continues from it)" if last else f"{err} ({where})")
    return err


def failed_job_key(cfg: DictConfig) -> str | None:
    """The job's key (``job.json``'s), or None for a config too broken to have one."""
    try:
        return job_key(job_identity(cfg))
    except Exception:  # noqa: BLE001 - a config that failed its own checks
        return None


def record_failure(cfg: DictConfig, err: BaseException) -> Path:
    """Write ``failed.json`` (error type and message, overrides), ``error.txt`` (traceback) and, if the
    job did not get that far, ``config_resolved.yaml``. A full disk may leave some of them unwritten."""
    output_dir = Path(cfg.paths.output_dir)
    record: dict[str, Any] = {
        "status": "failed",
        "error_type": type(err).__name__,
        "error": str(err),
        "overrides": list(cfg.run.overrides),
        "job_key": failed_job_key(cfg),  # kd.report: a later run of the same job that finishes supersedes this
    }
    path = output_dir / FAILURE_FILE
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not (output_dir / "config_resolved.yaml").is_file():
            save_config(cfg, output_dir / "config_resolved.yaml")
        write_text_atomically(output_dir / "error.txt", "".join(traceback.format_exception(err)))
        write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    except OSError as write_err:
        print(f"[kd] could not record the failure in {output_dir}: {write_err}", file=sys.stderr)
    return path


def finish_failed_wandb_run() -> None:
    """Close a W&B run left open by a failure, marked as failed, so the next job starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1)


def report_failure(err: BaseException, record: Path, multirun: bool) -> None:
    """Tell the user what failed and where the record is."""
    kind = "error" if isinstance(err, ConfigError | RunError) else f"error ({type(err).__name__})"
    print(f"{kind}: {err}", file=sys.stderr)
    note = "; the other jobs continue" if multirun else ""
    print(f"[kd] job failed; recorded in {record.parent}/{{{FAILURE_FILE}, error.txt}}{note}", file=sys.stderr)
