"""The distilled student's baseline: the same job without the teacher (``loss=ce``), if it has run.

A finished run counts as this job's baseline when its ``job.json`` config (read with today's config
names, see ``kd.config.migrations``) equals this job's apart from what only distillation reads (the
loss, the teacher, its cached outputs, on-policy sampling and ``optimized_metric``) and its
``metrics.json`` says ``job_type: baseline``: same data, student, optimiser, trainer, augmentation
and seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kd.config.identities import view
from kd.config.migrations import upgrade_identity
from kd.config.rules import BASELINE, JOB_FILE
from kd.jobs.job_record import job_identity


def _comparable(identity: dict[str, Any]) -> dict[str, Any]:
    return view(identity, "", BASELINE)


def find_baseline(cfg: DictConfig) -> tuple[Path, dict[str, Any]] | None:
    """The newest finished baseline run of this job under ``paths.log_dir``: (folder, metrics), or None."""
    mine = _comparable(job_identity(cfg))
    own = Path(cfg.paths.output_dir).resolve()
    found = []
    for record_path in Path(cfg.paths.log_dir).rglob(JOB_FILE):
        folder = record_path.parent
        if folder.resolve() == own or "teachers" in folder.parts or not (folder / "metrics.json").is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
            config = record.get("config")
            if not isinstance(config, dict) or _comparable(upgrade_identity(config)) != mine:
                continue
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("job_type") == "baseline":
            found.append((record.get("started", 0), folder, metrics))
    if not found:
        return None
    _, folder, metrics = max(found, key=lambda item: item[0])
    return folder, metrics
