"""When a run uses the teacher-output cache: its settings, and the splits it computes live (and why)."""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.losses.weighted_sum import WeightedSum
from kd.teacher.outputs import STORAGE_DTYPES, check_feature_taps

CACHE_CHOICES = ("auto", True, False)


def cache_settings(cfg: DictConfig) -> dict[str, Any]:
    """``teacher_outputs`` with its defaults filled in, checked."""
    settings: dict[str, Any] = {"cache": "auto", "dtype": "float16", "top_k": None, "features": [], "augmented_views": True}
    settings.update(cast(dict[str, Any], OmegaConf.to_container(cfg.get("teacher_outputs") or {}, resolve=True)))
    if settings["cache"] not in CACHE_CHOICES:
        raise ConfigError(f"teacher_outputs.cache={settings['cache']!r}; choose auto, true or false")
    if settings["dtype"] not in STORAGE_DTYPES:
        raise ConfigError(f"teacher_outputs.dtype={settings['dtype']!r}; choose one of {list(STORAGE_DTYPES)}")
    top_k = settings["top_k"]
    if top_k is not None and not (isinstance(top_k, int) and 0 < top_k < cfg.data.num_classes):
        raise ConfigError(
            f"teacher_outputs.top_k={top_k!r}: give null or an int between 1 and {cfg.data.num_classes - 1} "
            f"(data.num_classes={cfg.data.num_classes})"
        )
    settings["features"] = sorted(settings["features"] or [])
    layers = cfg.teacher.get("layers")
    declared = cast(dict[str, str], OmegaConf.to_container(layers)) if layers is not None else None
    check_feature_taps(settings["features"], declared)
    return settings


def term_temperatures(fn: Any) -> set[float]:
    """The temperatures a loss term softens the teacher with (``temperature`` or ``temperatures``; 1 if none)."""
    found = getattr(fn, "temperatures", None) or [getattr(fn, "temperature", 1.0)]
    return {float(t) for t in found}


def top_k_temperature(loss: WeightedSum, top_k: int | None) -> float | None:
    """The one temperature a top-k cache is built at: that of every active term reading the teacher.

    The top k and the mass outside them are exact only at the temperature they were computed at, so
    terms at several temperatures, or a scheduled temperature, cannot share a top-k cache.
    """
    if top_k is None:
        return None
    teacher_terms = [n for n in loss.active if getattr(loss.fns[n], "needs_teacher", False)]
    by_term = {n: sorted(term_temperatures(loss.fns[n])) for n in teacher_terms}
    scheduled = [n for n in teacher_terms if {"temperature", "temperatures"} & set(loss.schedules[n])]
    values = {t for ts in by_term.values() for t in ts}
    if scheduled or len(values) > 1:
        why = f"loss terms {scheduled} schedule their temperature" if scheduled else f"temperatures by term: {by_term}"
        raise ConfigError(
            f"teacher_outputs.top_k={top_k} caches the teacher at one temperature, but {why}. Use one unscheduled "
            "loss.temperature, or set teacher_outputs.top_k=null (the full teacher, live)."
        )
    return values.pop() if values else 1.0


def batch_limited_splits(cfg: DictConfig) -> dict[str, str]:
    """Splits the trainer reads only a count of batches of (``trainer.limit_<split>_batches`` an int, as in
    ``trainer=smoke``), each with its setting. A fraction (a float) is not a count: those splits are cached."""
    limited = {}
    for split in ("train", "val", "test"):
        limit = cfg.trainer.get(f"limit_{split}_batches")
        if isinstance(limit, int) and not isinstance(limit, bool):
            limited[split] = f"trainer.limit_{split}_batches={limit}"
    return limited


def batch_limited_message(limited: dict[str, str]) -> str:
    """The start-up line for splits that ``cache=auto`` leaves to the live teacher."""
    return (
        f"[kd] teacher runs live on the {', '.join(limited)} split(s): {', '.join(limited.values())} "
        "read(s) a few batches, and the cache would compute whole splits first (teacher_outputs.cache=true "
        "caches them anyway)"
    )


def live_training_reasons(
    datamodule: Any, loss: WeightedSum, features: list[str], views: tuple[list[int], str | None] = ([], None)
) -> list[str]:
    """Why cached outputs would be wrong for this run's training batches (empty: they are right)."""
    reasons = []
    if getattr(datamodule, "augment", False) and not views[0]:
        reasons.append(
            "training batches are randomly augmented (data.module.augment=true) and the cache holds "
            "the unaugmented view" + (f" ({views[1]})" if views[1] else "; teacher_outputs.augmented_views=true caches them")
        )
    if loss.reads_teacher_features and not features:
        reasons.append(f"loss terms {loss.active} read teacher features; list their taps in teacher_outputs.features")
    return reasons
