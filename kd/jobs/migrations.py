"""Job records of earlier kd versions, read with today's config names, so ``resume`` still finds them.

A job record (``job.json``) stores the job's config identity; its key is the hash of that identity.
When a config key is renamed, an old record's identity is upgraded here before it is compared, so a
run started before the rename is recognised as the same job. Each step is idempotent: an identity
written today passes through unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

# Each step below, oldest first (the history of each rename: docs/architecture.md, "Records from earlier versions"):
# `teacher_cache.enabled` -> `teacher_outputs.cache`; loss weights `alpha`/`beta` and method-named knobs;
# the `throughput` callback and `on_policy` (off); the trainer's `strategy`, `num_nodes`,
# `use_distributed_sampler` written out; `preact<i>` tap aliases and `teacher_outputs.augmented_views` left
# out of identities; `teacher_outputs.precision` (null); `data.monitor` removed (the task's monitor);
# `kd`'s `std_correction` (0).
TRAINER_DEFAULTS = {"strategy": "auto", "num_nodes": 1, "use_distributed_sampler": False}
LOSS_RENAMES: dict[str, list[tuple[str, str]]] = {  # term name -> (old key, new key), in order
    "dkd": [("alpha", "tckd_weight"), ("beta", "nckd_weight"), ("weight", "beta")],
    "jsd": [("beta", "jsd_beta")],
    "dist": [("weight", "beta")],
    "rkd": [("weight", "beta")],
}
TERM_ARG_RENAMES: dict[str, list[tuple[str, str]]] = {
    "dkd": [("alpha", "tckd_weight"), ("beta", "nckd_weight")],
    "jsd": [("beta", "jsd_beta")],
}


def _rename(node: dict[str, Any], old: str, new: str) -> None:
    if old in node and new not in node:
        node[new] = node.pop(old)


def upgrade_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` (a job record's ``config``) with every later rename applied."""
    upgraded = copy.deepcopy(identity)
    if isinstance(upgraded.get("teacher_cache"), dict):
        settings = upgraded.pop("teacher_cache")
        _rename(settings, "enabled", "cache")
        upgraded.setdefault("teacher_outputs", settings)
    callbacks = upgraded.get("callbacks")
    if isinstance(callbacks, dict) and "model_checkpoint" in callbacks:  # language models: a logging-only callback
        callbacks.setdefault("throughput", {"_target_": "kd.callbacks.TrainThroughput"})
    if "teacher_outputs" in upgraded:  # a run's config: on-policy sampling came with language models, off
        upgraded.setdefault("on_policy", {"lmbda": 0.0, "prompt_tokens": 16, "temperature": 1.0})
    for role in ("student", "teacher"):
        layers = upgraded[role].get("layers") if isinstance(upgraded.get(role), dict) else None
        if isinstance(layers, dict):
            for alias in [a for a in layers if a.startswith("preact")]:
                del layers[alias]
    if isinstance(upgraded.get("teacher_outputs"), dict):
        upgraded["teacher_outputs"].pop("augmented_views", None)
        upgraded["teacher_outputs"].setdefault("precision", None)
    if isinstance(upgraded.get("data"), dict):
        upgraded["data"].pop("monitor", None)
    if isinstance(upgraded.get("trainer"), dict):
        for key, value in TRAINER_DEFAULTS.items():
            upgraded["trainer"].setdefault(key, value)
    loss = upgraded.get("loss")
    terms = loss.get("terms") if isinstance(loss, dict) else None
    if isinstance(loss, dict) and isinstance(terms, dict):  # terms is a dict only inside a dict loss
        for term, renames in LOSS_RENAMES.items():
            if term in terms:
                for old, new in renames:
                    _rename(loss, old, new)
        if "standardize" in loss:
            loss.setdefault("std_correction", 0)
        for spec in terms.values():
            fn = spec.get("fn") if isinstance(spec, dict) else None
            if isinstance(fn, dict) and fn.get("_target_") == "kd.losses.kd.SoftTargetKL" and "standardize" in fn:
                fn.setdefault("std_correction", 0)
        for term, renames in TERM_ARG_RENAMES.items():
            fn = terms.get(term, {}).get("fn") if isinstance(terms.get(term), dict) else None
            if isinstance(fn, dict):
                for old, new in renames:
                    _rename(fn, old, new)
    return upgraded
