"""The run's teacher-output cache settings (``teacher_outputs``), and which splits may use a cache: what
refuses ``teacher_outputs.cache=true`` (checked before the teacher stage, ``kd.jobs.preflight``), which
splits a few-batch run leaves to the live teacher, and why training batches may need the live teacher.
Loading and building the cache: ``kd.teacher.cache``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.losses.weighted_sum import WeightedSum
from kd.task import task_of_config
from kd.teacher.outputs import check_feature_taps
from kd.teacher.views import view_epochs
from kd.utils.precision import stage_precision


def teacher_precision(cfg: DictConfig) -> str | int | None:
    """``teacher_outputs.precision``, or the student's (``trainer.precision``, ``auto`` decided) where it is null."""
    return OmegaConf.select(cfg, "teacher_outputs.precision") or stage_precision(cfg, "student")


def cache_settings(cfg: DictConfig) -> dict[str, Any]:
    """``teacher_outputs`` with its defaults filled in (the values' types: kd.config.schema), ``top_k``
    checked against the number of classes and ``features`` against the teacher's taps."""
    settings: dict[str, Any] = {"cache": "auto", "dtype": "float16", "top_k": None, "features": [], "augmented_views": True}
    settings.update(cast(dict[str, Any], OmegaConf.to_container(cfg.get("teacher_outputs") or {}, resolve=True)))
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
    augment = getattr(datamodule, "augment", False)
    if augment and not views[0]:
        shown = ", ".join(map(repr, augment)) if isinstance(augment, tuple | list) else augment
        reasons.append(
            f"training batches are randomly augmented (data.module.augment: {shown}) and the cache holds "
            "the unaugmented view" + (f" ({views[1]})" if views[1] else "; teacher_outputs.augmented_views=true caches them")
        )
    if loss.reads_teacher_features and not features:
        reasons.append(f"loss terms {loss.active} read teacher features; list their taps in teacher_outputs.features")
    return reasons


def uncacheable(cfg: DictConfig, settings: dict[str, Any], teacher_has_weights: bool) -> str | None:
    """Why no cache can hold this teacher's outputs (None: one can)."""
    if not teacher_has_weights:
        return "the teacher has no weights file to key the cache by"
    if task_of_config(cfg).language_model and settings["top_k"] is None:
        return ("full-vocabulary logits of every token do not fit; set teacher_outputs.top_k (e.g. 64) to cache "
                "the k most likely tokens and the mass outside them")
    return None


def check_cache_request(cfg: DictConfig, datamodule: Any, loss: WeightedSum, teacher_has_weights: bool) -> None:
    """Refuse, before the teacher stage, what building the cache would refuse: ``teacher_outputs.cache=true``
    where no cache can serve the run, and cached features of text teachers (their shapes vary by batch)."""
    settings = cache_settings(cfg)
    if settings["cache"] is False:
        return
    if settings["features"] and isinstance(datamodule.example_inputs(), Mapping):
        raise ConfigError(
            "teacher_outputs.features caches fixed-shape (image) taps only; text taps vary in length "
            "with each batch's padding. Set teacher_outputs.features=[] for text teachers."
        )
    if settings["cache"] is not True:
        return
    if why := uncacheable(cfg, settings, teacher_has_weights):
        raise ConfigError(f"teacher_outputs.cache=true, but {why}")
    views = view_epochs(cfg, datamodule, loss, bool(settings["augmented_views"]))
    if reasons := live_training_reasons(datamodule, loss, settings["features"], views):
        raise ConfigError(
            f"teacher_outputs.cache=true, but {'; '.join(reasons)}. "
            "Use teacher_outputs.cache=auto to run the teacher live on training batches."
        )
