"""Job records of earlier kd versions, read with today's config names, so ``resume`` still finds them.

A job record (``job.json``) stores the job's config identity; its key is the hash of that identity.
When a config key is renamed, an old record's identity is upgraded here before it is compared, so a
run started before the rename is recognised as the same job. Each step is idempotent: an identity
written today passes through unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

# kd 0.1 (up to b0d8114): `teacher_cache.enabled` became `teacher_outputs.cache` (cached teacher outputs;
# trained teacher weights are `paths.teacher_weights_dir`).
# Loss configs: one weight convention (issue 13): `alpha` is the distillation share with CE at
# 1 - alpha, `beta` the distillation weight with CE at 1; method knobs got method names.
# Language models (issue 14): the callback `throughput` (train/tokens_per_s or samples_per_s) and the
# run option `on_policy` (lmbda 0: off) were added.
# Scale-out (issue 15): the trainer's `strategy`, `num_nodes` and `use_distributed_sampler` (one process,
# kd's own loaders) were written out.
# More methods (issue 18): image model configs declare `preact<i>` tap aliases. Their paths follow from the
# network (itself in the identity), so identities leave them out and earlier runs keep matching.
# Speed (issue 17): `teacher_outputs.augmented_views` was added (off, then on by default). It says where the
# teacher's logits on the same views come from (computed live or read from the cache), like `threads` a
# choice of execution, so identities leave it out: runs from before and after the switch keep matching.
# Issue 17: `teacher_outputs.precision` was added (null: the trainer's precision, what the cache always used).
# Issue 18: `kd`'s `std_correction` (0, the population std it always used) was added next to `standardize`.
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
        for alias in [a for a in layers if a.startswith("preact")] if isinstance(layers, dict) else []:
            del layers[alias]
    if isinstance(upgraded.get("teacher_outputs"), dict):
        upgraded["teacher_outputs"].pop("augmented_views", None)
        upgraded["teacher_outputs"].setdefault("precision", None)
    if isinstance(upgraded.get("trainer"), dict):
        for key, value in TRAINER_DEFAULTS.items():
            upgraded["trainer"].setdefault(key, value)
    loss = upgraded.get("loss")
    terms = loss.get("terms") if isinstance(loss, dict) else None
    if isinstance(terms, dict):
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
