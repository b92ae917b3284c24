"""Check every job of a multirun before the first one starts.

Hydra's basic sweeper composes each job's config before launching (a job that does not compose stops
the sweep), but kd's value checks ran only as each job started: in ``loss.temperature=1,-2`` the second
job was refused after the first had trained. Where the sweeper lists its jobs ahead (every combination
of the listed values, ``kd.launch.launchers.lists_jobs``), each job's config is composed the same way
and checked here; a sweeper that chooses its jobs as it goes (Optuna) has each checked as it starts.
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the sweeper kd checks for (launchers.lists_jobs)
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from kd.errors import ConfigError
from kd.jobs.override_hints import NO_KEY, key_hints, parse_overrides
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
    """Raise one :class:`ConfigError` for the jobs that do not compose (a key that their options lack,
    before any value is checked, so that this answers without importing torch) or whose config breaks
    a rule: each message once, with the jobs it applies to (numbered as Hydra numbers them, with their
    swept values)."""
    if not lists_jobs(config.hydra.sweeper):
        return
    jobs = sweep_jobs(config)
    swept = [i for i in range(len(jobs[0]) if jobs else 0) if len({job[i] for job in jobs}) > 1]
    loader = GlobalHydra.instance().config_loader()

    def label(number: int) -> str:
        values = " ".join(jobs[number][i] for i in swept)
        return f"#{number}" + (f" ({values})" if values else "")

    composed: list[tuple[int, DictConfig]] = []
    refused: dict[str, list[str]] = {}
    for number, overrides in enumerate(jobs):
        try:
            composed.append((number, loader.load_sweep_config(config, overrides)))
        except Exception as err:  # noqa: BLE001 - Hydra's composition errors, named per job below
            refused.setdefault(_unfit(err, overrides, config, loader), []).append(label(number))
    if not refused:
        for number, cfg in composed:
            try:
                check_config(cfg, jobs[number], early_wandb=False)  # W&B starts in the jobs that log
            except ConfigError as err:
                refused.setdefault(str(err), []).append(label(number))
    if not refused:
        return
    if composed:  # some jobs compose: a key that only some options have
        refused = {(m + " (sweep it in a command of its own, over the options that have it)"
                    if m.startswith(NO_KEY) else m): n for m, n in refused.items()}
    parts = []
    for message, numbers in refused.items():
        which = "every job" if len(numbers) == len(jobs) else f"job {', '.join(numbers)} of {len(jobs)}"
        parts.append(f"{which}: {message}")
    raise ConfigError("the sweep starts no job: " + " | ".join(parts))


def _unfit(err: Exception, overrides: list[str], config: DictConfig, loader: ConfigLoader) -> str:
    """Why a job's config does not compose: kd's hint for a key its options lack (with the keys there
    are), else the first line of Hydra's message (with the options of a group, for an unknown one)."""
    try:
        hints = key_hints(list(parse_overrides(overrides)), loader,
                          lambda choices: loader.load_sweep_config(config, choices))
    except Exception:  # noqa: BLE001 - the job's group choices themselves do not compose
        hints = []
    if not hints:
        options = getattr(err, "options", None)  # hydra.errors.MissingConfigException's
        return f"its config does not compose: {str(err).splitlines()[0]}" + (
            f"; the options there: {', '.join(options)}" if options else "")
    return "; ".join(h.removeprefix("kd: ") for h in hints)
