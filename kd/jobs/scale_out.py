"""Start-up checks of multi-process training (``trainer=ddp``, ``trainer=fsdp``): what the engines
underneath (Lightning strategies, Hydra launchers) would otherwise reject deep inside a run."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.launch.launchers import check_launcher_starts
from kd.launch.processes import process_count
from kd.losses.weighted_sum import WeightedSum


def strategy_name(cfg: DictConfig) -> str:
    """``trainer.strategy`` as a lower-case word: ``auto``, ``ddp``, ``fsdp``, ... (a ``_target_``'s class name)."""
    strategy = cfg.trainer.get("strategy", "auto")
    if OmegaConf.is_dict(strategy):
        strategy = str(strategy.get("_target_", "")).rsplit(".", 1)[-1].removesuffix("Strategy")
    return str(strategy).lower()


def check_scale_out(cfg: DictConfig, loss: WeightedSum | None = None) -> None:
    """Sharded training needs CUDA; the global batch must split evenly; the launcher must be able to start
    the processes (``kd.launch.launchers``); a loss term that keeps per-process state (its
    ``single_process_only`` says why) runs in one process."""
    strategy, processes = strategy_name(cfg), process_count(cfg)
    terms = {name: loss.fns[name] for name in loss.active} if loss is not None and processes > 1 else {}
    for name, term in terms.items():
        if why := getattr(term, "single_process_only", None):
            raise ConfigError(
                f"loss.terms.{name} ({type(term).__name__}) cannot train in {processes} processes: {why}. "
                "Run it in one process (trainer.devices=1 trainer.num_nodes=1), or choose another loss."
            )
    if strategy.startswith("fsdp") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.strategy={strategy} (trainer=fsdp, experimental): sharded training runs on CUDA GPUs only "
            "(Lightning's FSDPStrategy), and this machine has none. On CPU use trainer=ddp (data-parallel, gloo)."
        )
    batch = OmegaConf.select(cfg, "data.module.batch_size", default=None)
    if processes > 1 and isinstance(batch, int) and batch % processes:
        raise ConfigError(
            f"data.module.batch_size={batch} is the global batch of one optimiser step and must split evenly "
            f"among the {processes} training processes (trainer.devices x trainer.num_nodes); "
            f"use a multiple of {processes}"
        )
    check_launcher_starts(processes, cfg.trainer.devices)
