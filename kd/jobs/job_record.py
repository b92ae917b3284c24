"""A run's records: ``job.json`` (its job identity and key, overrides and the SHA-256 of the files its data
reads, for ``resume`` to find it by) and the name of ``failed.json`` (``kd.jobs.records`` writes it)."""

from __future__ import annotations

import copy
import json
import shlex
import time
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf, open_dict

from kd.config.migrations import upgrade_identity
from kd.config.rules import JOB_FILE
from kd.data.source_files import files_sha256
from kd.utils.files import write_text_atomically
from kd.utils.hashing import config_identity, identity_hash

FAILURE_FILE = "failed.json"  # a run that failed (kd.jobs.records writes it)
RESUMED_FAILURE_FILE = "failed_before_resume.json"  # failed.json of a run that was resumed (kd.report skips it)


def job_identity(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config's keys that enter the job identity (``kd.config.schema``); paths read as
    placeholders (``<paths.output_dir>``) where other keys hold them."""
    plain = copy.deepcopy(cfg)
    with open_dict(plain):
        for key in list(plain.paths):
            plain.paths[key] = f"<paths.{key}>"
    data = cast(dict[str, Any], OmegaConf.to_container(plain, resolve=True))
    return upgrade_identity(config_identity(data))


def job_key(identity: dict[str, Any]) -> str:
    """The 16-digit key of a job identity."""
    return identity_hash(identity, 16)


def record_key(record: dict[str, Any]) -> str | None:
    """The key of a ``job.json`` record under today's config names (older records are upgraded)."""
    config = record.get("config")
    if not isinstance(config, dict):
        return record.get("key")
    return job_key(config_identity(upgrade_identity(config)))


def write_job_record(cfg: DictConfig, output_dir: Path) -> None:
    """``job.json``: the job's key, config and overrides, for ``resume`` to find it by."""
    identity = job_identity(cfg)
    record = {
        "key": job_key(identity),
        "started": time.time(),
        "overrides": list(cfg.run.overrides),
        "config": identity,
        "files_sha256": files_sha256(cfg.data),  # what the files it reads held (not part of the key)
    }
    write_text_atomically(output_dir / JOB_FILE, json.dumps(record, indent=1, default=str) + "\n")


def resume_command(run_dir: Path, record: dict[str, Any]) -> str:
    """``python -m kd.run <the overrides the run started with> resume=<run_dir>``, from its ``job.json``
    record, quoted for a shell."""
    started = [o for o in record.get("overrides", []) if not str(o).lstrip("+~").startswith("resume=")]
    return " ".join(["python -m kd.run", *map(shlex.quote, map(str, started)), shlex.quote(f"resume={run_dir}")])
