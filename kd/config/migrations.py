"""Job records of earlier kd versions, read with today's config names, so ``resume`` still finds them.

A job record (``job.json``) stores the job's config identity; its key is the hash of that identity.
An old record's identity is upgraded here before it is compared, so a run started before a change is
recognised as the same job: renamed keys get today's names (the tables below), values of an older
form get today's (``data.module.augment: true`` becomes the list of transforms it stands for), keys
added since get the value their ``legacy`` declaration gives (``kd.config.schema``), and keys that no
longer enter the job identity (removed, or declared ``NOWHERE``) are dropped. Each step is idempotent:
an identity written today passes through unchanged. The history of each change: docs/architecture.md, "Records
from earlier versions".
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from kd.config.identities import DECLARED, view
from kd.config.rules import JOB, Legacy

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
LEGACY: dict[str, Legacy] = {key: d.legacy for key, d in DECLARED.items() if d.legacy is not None}
# ``data.module.augment: true``: kd's one augmentation before it became a list of transforms (issue 37)
AUGMENT_TRUE: list[dict[str, Any]] = [{"_target_": "kd.data.augment.RandomShift", "pixels": 2},
                                      {"_target_": "kd.data.augment.HorizontalFlip", "p": 0.5}]


def augment_list(augment: Any) -> Any:
    """``data.module.augment`` in its list form: ``true`` -> :data:`AUGMENT_TRUE`, false or null -> ``[]``,
    anything else unchanged."""
    if augment is True:
        return copy.deepcopy(AUGMENT_TRUE)
    return [] if augment is False or augment is None else augment


def _rename(node: dict[str, Any], old: str, new: str) -> None:
    if old in node and new not in node:
        node[new] = node.pop(old)


def _renamed(upgraded: dict[str, Any]) -> None:
    if isinstance(upgraded.get("teacher_cache"), dict):  # `teacher_cache.enabled` -> `teacher_outputs.cache`
        settings = upgraded.pop("teacher_cache")
        _rename(settings, "enabled", "cache")
        upgraded.setdefault("teacher_outputs", settings)
    loss = upgraded.get("loss")
    terms = loss.get("terms") if isinstance(loss, dict) else None
    if not (isinstance(loss, dict) and isinstance(terms, dict)):  # terms is a dict only inside a dict loss
        return
    for term, renames in LOSS_RENAMES.items():
        if term in terms:
            for old, new in renames:
                _rename(loss, old, new)
    for term, renames in TERM_ARG_RENAMES.items():
        fn = terms.get(term, {}).get("fn") if isinstance(terms.get(term), dict) else None
        if isinstance(fn, dict):
            for old, new in renames:
                _rename(fn, old, new)


def _augment_lists(upgraded: dict[str, Any]) -> None:
    """``data.module.augment`` (the teacher data's too) in its list form, so ``true`` and the list it stands
    for are one job, and ``false``, null and ``[]`` another."""
    data = upgraded.get("data")
    for holder in (data, data.get("teacher_data") if isinstance(data, dict) else None):
        module = holder.get("module") if isinstance(holder, dict) else None
        if isinstance(module, dict) and "augment" in module:
            module["augment"] = augment_list(module["augment"])


def _bindings(node: Any, parts: list[str]) -> Iterator[list[str]]:
    """The names that the ``*`` of ``parts`` take in ``node`` (every way; none when a ``*`` has no match)."""
    if "*" not in parts:
        yield []
        return
    at = parts.index("*")
    for name in parts[:at]:
        node = node.get(name) if isinstance(node, dict) else None
    for name in (node if isinstance(node, dict) else {}):
        for rest in _bindings(node[name], parts[at + 1:]):
            yield [str(name), *rest]


def _bound(pattern: str, names: list[str]) -> list[str]:
    found = iter(names)
    return [next(found) if part == "*" else part for part in pattern.split(".")]


def _has(node: Any, parts: list[str]) -> bool:
    for name in parts:
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def _with_legacy_values(upgraded: dict[str, Any]) -> None:
    for key, legacy in LEGACY.items():
        for names in list(_bindings(upgraded, key.split("."))):
            if not _has(upgraded, _bound(legacy.when, names)):
                continue
            *parents, last = _bound(key, names)
            node: Any = upgraded
            for name in parents:
                node = node.setdefault(name, {}) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.setdefault(last, copy.deepcopy(legacy.value))


def upgrade_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` (a job record's ``config``) with today's names, legacy values and job-identity keys."""
    upgraded = copy.deepcopy(identity)
    _renamed(upgraded)
    _augment_lists(upgraded)
    _with_legacy_values(upgraded)
    return view(upgraded, "", JOB)
