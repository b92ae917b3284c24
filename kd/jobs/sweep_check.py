"""Check every job of a multirun before the first one starts.

Hydra's basic sweeper composes each job's config before launching (a job that does not compose stops
the sweep), but kd's value checks ran only as each job started: in ``loss.temperature=1,-2`` the second
job was refused after the first had trained. Where the sweeper lists its jobs ahead (every combination
of the listed values, ``kd.launch.launchers.lists_jobs``), each job's config is composed the same way
and checked here; a sweeper that chooses its jobs as it goes (Optuna) has each checked as it starts.
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the sweeper kd checks for (launchers.lists_jobs)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from kd.errors import ConfigError
from kd.jobs.validate import check_config
from kd.launch.launchers import lists_jobs


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The overrides of each job, as Hydra's basic sweeper lists them (its own expansion): every
    combination of ``hydra.sweeper.params`` and the command line's sweeps. Empty for a sweep it refuses."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    try:
        (jobs,) = BasicSweeper.split_arguments(parser.parse_overrides([*params, *config.hydra.overrides.task]), None)
    except HydraException:  # e.g. an interval: the sweeper refuses it with its own message
        return []
    return [list(job) for job in jobs]


def check_sweep(config: DictConfig) -> None:
    """Raise one :class:`ConfigError` for the jobs whose config breaks a rule, each message once with the
    jobs it applies to (numbered as Hydra numbers them, with their swept values)."""
    if not lists_jobs(config.hydra.sweeper):
        return
    jobs = sweep_jobs(config)
    swept = [i for i in range(len(jobs[0]) if jobs else 0) if len({job[i] for job in jobs}) > 1]
    loader = GlobalHydra.instance().config_loader()
    refused: dict[str, list[str]] = {}
    for number, overrides in enumerate(jobs):
        try:
            cfg = loader.load_sweep_config(config, overrides)
        except Exception:  # noqa: BLE001, S112 - Hydra's sweeper refuses a job that does not compose, as it launches
            continue
        try:
            check_config(cfg, overrides, early_wandb=False)  # W&B starts in the jobs that log
        except ConfigError as err:
            values = " ".join(overrides[i] for i in swept)
            refused.setdefault(str(err), []).append(f"#{number}" + (f" ({values})" if values else ""))
    if not refused:
        return
    parts = []
    for message, numbers in refused.items():
        which = "every job" if len(numbers) == len(jobs) else f"job {', '.join(numbers)} of {len(jobs)}"
        parts.append(f"{which}: {message}")
    raise ConfigError("the sweep starts no job: " + " | ".join(parts))
