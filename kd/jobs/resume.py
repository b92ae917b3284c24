"""Resuming jobs: find a job's earlier run by its config, continue it from its last checkpoint, or
skip the job when that run finished (``resume=true``, or ``resume=<run folder>``).

Every run writes ``job.json`` (``kd.jobs.job_record``: a hash of its config without paths and bookkeeping
keys, that config, and the SHA-256 of the files its data config names: a run whose files have changed
since is not resumed) into its folder. A resumed run continues *in the earlier run's folder*, so its
checkpoints, best-model bookkeeping and ``metrics.json`` end up where the run began; the new
Hydra folder only gets ``resumed.json`` pointing there.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, open_dict

from kd.config.migrations import upgrade_identity
from kd.config.rules import JOB_FILE
from kd.data.source_files import changed_files
from kd.errors import ConfigError
from kd.jobs.job_record import FAILURE_FILE, RESUMED_FAILURE_FILE, job_identity, job_key, record_key, resume_command
from kd.launch.processes import is_rank_zero, slurm_restarts
from kd.utils.files import write_text_atomically
from kd.utils.hashing import config_identity

CHECKPOINTS = ("resume.ckpt", "last.ckpt")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest of ``checkpoints/{resume,last}.ckpt`` that loads (a kill can cut a write short)."""
    found = [run_dir / "checkpoints" / name for name in CHECKPOINTS if (run_dir / "checkpoints" / name).is_file()]
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return path
        except Exception:  # noqa: BLE001 - unreadable: try the older one
            print(f"[kd] resume: {path} cannot be read; trying an older checkpoint", flush=True)
    return None


@dataclass
class ResumePlan:
    """What ``resume`` found: ``skip`` (the job finished in ``run_dir``), ``continue`` (from
    ``checkpoint`` in ``run_dir``) or ``fresh``."""

    action: str
    run_dir: Path | None = None
    checkpoint: Path | None = None


def _differences(mine: dict[str, Any], theirs: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(mine) | set(theirs))
    out: list[str] = []
    for key in keys:
        a, b = mine.get(key, "<absent>"), theirs.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {b!r} there, {a!r} now")
    return out


def finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a run that finished in ``run_dir``, or None (none written, or a file that cannot be
    read: the run is continued from its checkpoint and writes them again)."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"[kd] resume: {path} cannot be read ({type(err).__name__}); the run is not counted as finished", flush=True)
        return None
    return metrics if isinstance(metrics, dict) else None


def _plan_for(run_dir: Path) -> ResumePlan:
    if finished_metrics(run_dir) is not None:
        return ResumePlan("skip", run_dir)
    checkpoint = latest_checkpoint(run_dir)
    return ResumePlan("continue", run_dir, checkpoint) if checkpoint else ResumePlan("fresh")


def _explicit(cfg: DictConfig, run_dir: Path, identity: dict[str, Any]) -> ResumePlan:
    record_path = run_dir / JOB_FILE
    if not record_path.is_file():
        raise ConfigError(
            f"resume={run_dir}: no {JOB_FILE} there, so it is not a kd run folder. "
            "Give the folder of the run to continue (it holds job.json and checkpoints/)."
        )
    record = json.loads(record_path.read_text())
    if changed := changed_files(record.get("files_sha256"), cfg.data):
        raise ConfigError(
            f"resume={run_dir}: that run learned from other data: {', '.join(changed)} changed since, so it "
            "cannot go on with the current files. Start it anew without resume (it gets a folder of its own), "
            "or restore the files it read."
        )
    if record_key(record) != job_key(identity):
        diff = _differences(identity, config_identity(upgrade_identity(record.get("config", {}))))
        raise ConfigError(
            f"resume={run_dir}: that run had another config ({'; '.join(diff[:8]) or 'unknown'}). "
            f"Resume it with the command it was started with: {resume_command(run_dir, record)}"
        )
    plan = _plan_for(run_dir)
    if plan.action == "fresh":
        raise ConfigError(
            f"resume={run_dir}: the run has no readable checkpoint (checkpoints/resume.ckpt or "
            "last.ckpt) to continue from; start it again without resume."
        )
    return plan


def plan_resume(cfg: DictConfig) -> ResumePlan:
    """Decide from ``cfg.resume`` what this job does; searches ``paths.log_dir`` for ``resume=true``.

    A job SLURM restarted (``SLURM_RESTART_COUNT`` > 0) continues its earlier attempt without being
    asked: it searches the folder that holds its own (a multirun's sweep folder, an ``srun`` job's
    ``slurm-<job id>`` folder), where the attempt that got the requeue signal left its resume point.
    """
    setting = cfg.get("resume", False)
    if setting in (False, None, "false"):
        if restarts := slurm_restarts():
            near = Path(cfg.paths.output_dir).parent
            print(f"[kd] resume: SLURM restarted this job (SLURM_RESTART_COUNT={restarts}); continuing its "
                  f"earlier attempt under {near}", flush=True)
            return _search(cfg, near)
        return ResumePlan("fresh")
    identity = job_identity(cfg)
    if setting not in (True, "true"):
        return _explicit(cfg, Path(str(setting)), identity)
    return _search(cfg, Path(cfg.paths.log_dir))


def _search(cfg: DictConfig, root: Path) -> ResumePlan:
    """The newest earlier run of this job under ``root``: finished (skip), else with a checkpoint (continue)."""
    key = job_key(job_identity(cfg))
    earlier = []  # this job's own folder too: a requeued multirun job (submitit) starts again in it
    for record_path in root.rglob(JOB_FILE):
        try:
            record = json.loads(record_path.read_text())
            matches = record_key(record) == key
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            print(f"[kd] resume: {record_path} cannot be read ({type(err).__name__}); that run is not resumed", flush=True)
            continue
        if matches and (changed := changed_files(record.get("files_sha256"), cfg.data)):
            print(f"[kd] resume: {record_path.parent} ran on other data ({', '.join(changed)} changed since); "
                  "that run is not resumed", flush=True)
        elif matches:
            earlier.append((record.get("started", 0), record_path.parent))
    newest_first = [run_dir for _, run_dir in sorted(earlier, reverse=True)]
    if finished := next((d for d in newest_first if finished_metrics(d) is not None), None):
        return ResumePlan("skip", finished)
    for run_dir in newest_first:  # loads checkpoints only until one is readable
        if checkpoint := latest_checkpoint(run_dir):
            return ResumePlan("continue", run_dir, checkpoint)
    print(f"[kd] resume: no earlier run of this job with a checkpoint under {root}; starting it")
    return ResumePlan("fresh")


def apply_plan(cfg: DictConfig, plan: ResumePlan) -> dict[str, Any] | None:
    """Act on ``plan``: for ``skip`` copy the finished run's metrics here and return them; for
    ``continue`` point ``paths.output_dir`` at the earlier run. Returns None unless skipping."""
    own, writer = Path(cfg.paths.output_dir), is_rank_zero()  # several processes: rank 0 writes
    in_place = plan.run_dir is not None and plan.run_dir.resolve() == own.resolve()  # a requeued job in its folder
    if plan.action == "skip":
        assert plan.run_dir is not None  # skip and continue plans name their run
        metrics = cast(dict[str, Any], finished_metrics(plan.run_dir))  # the plan read them
        if in_place:
            print(f"[kd] resume: this job already finished in {own}; nothing to do", flush=True)
            return metrics
        metrics["reused_from"] = str(plan.run_dir)
        if writer:
            shutil.copy2(plan.run_dir / JOB_FILE, own / JOB_FILE)
            write_text_atomically(own / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        print(f"[kd] resume: this job finished in {plan.run_dir}; skipped (its metrics copied to {own})", flush=True)
        return metrics
    if plan.action == "continue":
        assert plan.run_dir is not None
        if writer and (failure := plan.run_dir / FAILURE_FILE).is_file():  # the run goes on: no longer failed
            os.replace(failure, plan.run_dir / RESUMED_FAILURE_FILE)
        if writer and not in_place:
            (own / "resumed.json").write_text(
                json.dumps({"continued_in": str(plan.run_dir), "checkpoint": str(plan.checkpoint)}) + "\n"
            )
        print(f"[kd] resume: continuing {plan.run_dir} from {plan.checkpoint}", flush=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(plan.run_dir)
    return None
