"""The run's teacher-output cache: which splits may use it, and loading (or building) them.

Settings live under ``teacher_outputs`` in the config (see conf/train.yaml and docs/teacher_cache.md).
"""

from __future__ import annotations

import fcntl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.config.identities import view as identity_view
from kd.config.rules import CACHE
from kd.errors import ConfigError
from kd.launch.processes import is_rank_zero, wait_for_rank_zero
from kd.losses.weighted_sum import WeightedSum
from kd.task import task_of_config
from kd.teacher.cache_files import read_entry, write_entry
from kd.teacher.outputs import CachedTeacherOutputs, cache_folder, check_feature_taps, compute_teacher_outputs
from kd.teacher.views import compute_view_outputs, view_entry, view_epochs, view_record
from kd.teacher_source import CacheEntry
from kd.utils.hashing import config_identity, file_sha256, identity_hash


def teacher_precision(cfg: DictConfig) -> str | int | None:
    """``teacher_outputs.precision``, or the trainer's precision where it is null."""
    return OmegaConf.select(cfg, "teacher_outputs.precision") or cfg.trainer.get("precision")


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


def cache_identity(
    cfg: DictConfig, teacher_ckpt: Path, settings: dict[str, Any], temperature: float | None = None,
    train_texts: Path | None = None,
) -> dict[str, Any]:
    """What the cached outputs depend on (the cache folder's key); a top-k cache also depends on the
    temperature it is built at, and holds each label's log-probability (``label_log_prob``); a training
    split of teacher generations (sequence-level KD) on their file."""
    return {
        "teacher": cfg.teacher.name,
        "teacher_checkpoint": str(Path(teacher_ckpt).resolve()),
        "teacher_net": OmegaConf.to_container(cfg.teacher.net, resolve=True),
        "data": identity_view(config_identity(cfg.data), "data", CACHE),  # the samples, not how they are batched
        "view": "unaugmented",
        "precision": str(teacher_precision(cfg)),
        **{k: settings[k] for k in ("dtype", "top_k", "features")},
        **({"top_k_temperature": temperature, "label_log_prob": True} if settings["top_k"] is not None else {}),
        **({"train_texts": Path(train_texts).name} if train_texts is not None else {}),
    }


def prepare_cached_teacher(
    cfg: DictConfig, datamodule: Any, loss: WeightedSum, teacher: nn.Module, teacher_ckpt: Path | None,
    train_texts: Path | None = None,
) -> dict[CacheEntry, CachedTeacherOutputs]:
    """Cached teacher outputs by entry (``train`` or one per epoch's augmented views, ``val``, ``test``;
    ``kd.teacher_source``); ``{}`` when the cache is off.
    ``train_texts``: the teacher generations that replaced the training split (sequence-level KD).

    Valid cache entries are read; missing, stale or corrupt ones are (re)built under a file lock,
    so the jobs of a sweep compute each split once and share it.
    """
    settings = cache_settings(cfg)
    if settings["cache"] is False:
        return {}
    check_cache_request(cfg, datamodule, loss, teacher_ckpt is not None)  # preflight ran it already
    if why := uncacheable(cfg, settings, teacher_ckpt is not None):
        print(f"[kd] teacher runs live: {why}", flush=True)
        return {}
    assert teacher_ckpt is not None  # uncacheable() said why not otherwise
    limited = batch_limited_splits(cfg) if settings["cache"] == "auto" else {}
    if limited:
        print(batch_limited_message(limited), flush=True)
    views = view_epochs(cfg, datamodule, loss, bool(settings["augmented_views"]) and "train" not in limited)
    reasons = [] if "train" in limited else live_training_reasons(datamodule, loss, settings["features"], views)
    if not loss.needs_teacher:  # the teacher only evaluates (sequence-level KD): no training split
        reasons, splits = [], [CacheEntry("val"), CacheEntry("test")]
    else:
        train = [CacheEntry("train", epoch) for epoch in views[0]] or [CacheEntry("train")]  # augmented: per epoch
        splits = [CacheEntry("val"), CacheEntry("test")] if reasons else [*train, CacheEntry("val"), CacheEntry("test")]
    if reasons:
        print(f"[kd] teacher runs live on training batches: {'; '.join(reasons)}", flush=True)
    splits = [s for s in splits if s.split not in limited]
    if not splits:
        return {}
    datamodule.prepare_data()
    datamodule.setup("fit")
    temperature = top_k_temperature(loss, settings["top_k"])
    identity = cache_identity(cfg, teacher_ckpt, settings, temperature, train_texts)
    folder = cache_folder(cfg.paths.teacher_outputs_dir, cfg.teacher.name, cfg.data.name, identity_hash(identity, 12))
    folder.mkdir(parents=True, exist_ok=True)
    teacher_sha = file_sha256(teacher_ckpt)
    build = is_rank_zero()  # several processes: rank 0 builds, the others read once it has

    def read_or_build() -> dict[CacheEntry, CachedTeacherOutputs] | None:
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = {
                s: _load_or_build(cfg, datamodule, teacher, folder, s, identity, teacher_sha, settings, build)
                for s in splits
            }
            fcntl.flock(lock, fcntl.LOCK_UN)
        return None if None in found.values() else cast(dict[CacheEntry, CachedTeacherOutputs], found)

    cached = (
        read_or_build()
        if build
        else wait_for_rank_zero(
            read_or_build, f"the teacher outputs in {folder}", Path(cfg.paths.output_dir) / "failed.json"
        )
    )
    assert cached is not None  # rank zero builds every split
    print(f"[kd] teacher outputs for {', '.join(s.name for s in splits)} read from {folder}", flush=True)
    return cached


def _load_or_build(
    cfg: DictConfig,
    datamodule: Any,
    teacher: nn.Module,
    folder: Path,
    split: CacheEntry,
    identity: dict[str, Any],
    teacher_sha: str,
    settings: dict[str, Any],
    build: bool = True,
) -> CachedTeacherOutputs | None:
    dataset = datamodule.splits[split.split]
    if not hasattr(dataset, "fingerprint"):
        raise ConfigError(
            f"data split {split.split!r} ({type(dataset).__name__}) has no fingerprint(); set teacher_outputs.cache=false"
        )
    features = settings["features"] if split.name == "train" else []
    view = view_record(cfg, datamodule, split.epoch) if split.epoch is not None else None
    expected = {
        "key": identity_hash(identity, 12),
        "identity": identity,
        "split": split.name,
        "teacher_sha256": teacher_sha,
        "data_sha256": dataset.fingerprint(),
        "num_samples": len(dataset),
        "num_classes": cfg.data.num_classes,
        "split_features": features,
        **({"view": view} if view else {}),
    }
    entry = view_entry(split.name, view) if view else split.name
    tensors, status = read_entry(folder, entry, expected)
    if tensors is None and not build:
        return None
    if tensors is None:
        if status != "missing":
            print(f"[kd] teacher-output cache {folder / entry}.pt is {status}: rebuilding it", flush=True)
        print(f"[kd] computing teacher outputs on the {split.name} split ({len(dataset)} samples)", flush=True)
        common = {"dtype": settings["dtype"], "precision": teacher_precision(cfg),
                  "channels_last": cfg.get("channels_last", False)}
        tensors = compute_view_outputs(
            teacher, dataset, datamodule.augment_batch, batch_size=view["batch_size"], seed=view["seed"],
            epoch=view["epoch"], num_classes=cfg.data.num_classes, **common,
        ) if view else compute_teacher_outputs(
            teacher, dataset, datamodule.eval_batch_size, layers=cfg.teacher.get("layers"), features=features,
            top_k=settings["top_k"], temperature=identity.get("top_k_temperature") or 1.0, **common,
        )
        shapes = {alias: list(t.shape[1:]) for alias, t in tensors["features"].items()}
        stats = {"top_k_kl": round(float(tensors.pop("top_k_kl")), 6)} if "top_k_kl" in tensors else {}
        write_entry(folder, entry, tensors, {**expected, "top_k": settings["top_k"], "feature_shapes": shapes, **stats})
        size_mb = (folder / f"{entry}.pt").stat().st_size / 2**20
        error = f", mean KL(full || top-{settings['top_k']}, even tail) = {stats['top_k_kl']:.4g} nats" if stats else ""
        print(f"[kd] cached teacher outputs of {split.name}: {size_mb:.1f} MB{error}", flush=True)
    return CachedTeacherOutputs(tensors, cfg.data.num_classes)
