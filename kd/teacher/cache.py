"""The run's teacher-output cache: loading (or building) the splits it holds (which splits may use it:
``kd.teacher.cache_plan``).

Settings live under ``teacher_outputs`` in the config (see conf/train.yaml and docs/teacher_cache.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.config.identities import view as identity_view
from kd.config.rules import CACHE
from kd.errors import ConfigError
from kd.launch.processes import is_rank_zero, wait_for_rank_zero
from kd.losses.weighted_sum import WeightedSum
from kd.teacher.cache_files import read_entry, write_entry
from kd.teacher.cache_plan import (
    batch_limited_message,
    batch_limited_splits,
    cache_settings,
    check_cache_request,
    live_training_reasons,
    teacher_precision,
    top_k_temperature,
    uncacheable,
)
from kd.teacher.outputs import CachedTeacherOutputs, cache_folder, compute_teacher_outputs
from kd.teacher.views import compute_view_outputs, view_entry, view_epochs, view_record
from kd.teacher_source import CacheEntry
from kd.utils.files import build_lock
from kd.utils.hashing import config_identity, file_sha256, identity_hash


def cache_identity(
    cfg: DictConfig, teacher_ckpt: Path, settings: dict[str, Any], temperature: float | None = None,
    train_texts: Path | None = None,
) -> dict[str, Any]:
    """What the cached outputs depend on (the cache folder's key); a top-k cache also depends on the
    temperature it is built at, and holds each label's log-probability (``label_log_prob``); a training
    split of teacher generations (sequence-level KD) on their file."""
    return {
        "teacher": cfg.teacher.name,
        "teacher_sha256": file_sha256(teacher_ckpt),  # the teacher by content: a moved or remounted file keeps its cache
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
    teacher_sha = identity["teacher_sha256"]
    build = is_rank_zero()  # several processes: rank 0 builds, the others read once it has

    def read_or_build() -> dict[CacheEntry, CachedTeacherOutputs] | None:
        def load(entries: list[CacheEntry], building: bool) -> dict[CacheEntry, CachedTeacherOutputs | None]:
            return {s: _load_or_build(cfg, datamodule, teacher, folder, s, identity, teacher_sha, settings, building)
                    for s in entries}

        found = load(splits, False)  # entries are renamed into place whole and checked on read: no lock
        missing = [s for s, outputs in found.items() if outputs is None]
        if missing and build:
            with build_lock(folder / ".lock"):  # the jobs of a sweep build each entry once
                found.update(load(missing, True))
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
