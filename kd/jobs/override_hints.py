"""Hints for command-line overrides that name no config key (``loss.temprature=2``, ``optim.lr=0.1``).

Hydra refuses such an override ("Key 'temprature' is not in struct") and suggests appending it with
``+``, which is right for a new key and wrong for a typo. After that refusal ``kd.run`` composes the
config with the command line's group choices alone and names the closest existing keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from hydra import compose
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from kd.utils.config_files import initialize_conf

_ABSENT = object()
NO_KEY = "the config has no key"  # how a hint for a key the composed config lacks begins (after "kd: ")


def override_hints(argv: Sequence[str], config_name: str = "train") -> list[str]:
    """One line per override in ``argv`` that changes or deletes a key the composed config lacks, or that
    adds (``+``) an option of a group the defaults list already chooses (Hydra: "Multiple values for ...").

    Empty when every key exists, when the group choices themselves do not compose (Hydra's own
    message covers that) or when ``argv`` holds nothing parseable. Keys under ``hydra.`` are Hydra's
    and are not checked.
    """
    overrides = list(parse_overrides(argv))
    if not overrides:
        return []
    GlobalHydra.instance().clear()  # left initialised by the hydra.main call that refused the override
    try:
        with initialize_conf():  # the config tree kd.run reads
            return key_hints(overrides, GlobalHydra.instance().config_loader(),
                             lambda choices: compose(config_name, overrides=choices, return_hydra_config=True),
                             config_name)
    except Exception:  # noqa: BLE001 - a hint is optional; Hydra has already said what failed
        return []
    finally:
        GlobalHydra.instance().clear()


def key_hints(overrides: Sequence[Override], loader: ConfigLoader, compose_choices: Callable[[list[str]], DictConfig],
              config_name: str = "train") -> list[str]:
    """:func:`override_hints` for parsed ``overrides``: ``compose_choices(group_choices)`` composes the
    config (with its ``hydra`` node) from the overrides' group choices alone, through ``loader``'s tree.
    Raises what composing raises."""
    groups = set(_groups(loader, ""))
    choices = [c for o in overrides if o.key_or_group in groups or o.package is not None if (c := _as_choice(o))]
    cfg = compose_choices(choices)
    chosen = set(cfg.hydra.runtime.choices)  # the groups the defaults list already has a place for
    with open_dict(cfg):
        del cfg["hydra"]
    keys = sorted(_paths(OmegaConf.to_container(cfg, resolve=False)))
    hints = []
    for o in overrides:
        if o.is_add() and o.key_or_group in chosen and not o.key_or_group.startswith("hydra"):
            value = o.get_value_element_as_str() if not o.is_sweep_override() else "<option>"
            hints.append(f"kd: {o.key_or_group} is a group of {config_name}.yaml's defaults, so an option replaces its "
                         f"choice; write {o.key_or_group}={value}, without '+'")
            continue
        key = o.key_or_group
        if o.is_add() or o.is_force_add() or key in groups or key == "hydra" or key.startswith("hydra.") or o.package is not None:
            continue
        if OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False,
                           throw_on_resolution_failure=False) is _ABSENT:
            hints.append(_hint(key, keys, groups, cfg, choices))
    return hints


def parse_overrides(argv: Sequence[str]) -> Iterator[Override]:
    """The overrides in ``argv`` that Hydra's parser reads (flags such as ``-m`` and ``--cfg job`` left out)."""
    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue  # flags (-m, --cfg job) and their values
        try:
            yield from parser.parse_overrides([arg])
        except Exception:  # noqa: BLE001, S112 - not an override Hydra could parse either
            continue


def _groups(loader: Any, parent: str) -> Iterator[str]:
    for name in loader.list_groups(parent):
        path = f"{parent}/{name}" if parent else name
        yield path
        yield from _groups(loader, path)


def _as_choice(override: Override) -> str | None:
    """``group=option`` (the first option of a sweep), ``~group``, or None for a ``+group`` add."""
    if override.is_add():
        return None
    if override.is_delete():
        return f"~{override.key_or_group}"
    value = next(iter(override.sweep_string_iterator())) if override.is_sweep_override() else override.value()
    return f"{override.key_or_group}={value}"


def _paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for name, child in node.items():
            path = f"{prefix}{name}"
            yield path
            yield from _paths(child, f"{path}.")


def closest_keys(key: str, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """The keys close to a mistyped ``key`` (not the key or its ancestors, and with a last name close to
    its own: ``loss.terms.feature`` is no fix for ``loss.temperature``), and those of them beside it (a
    typo in the last name)."""
    leaf = key.rpartition(".")[2]
    close = [k for k in difflib.get_close_matches(key, sorted(set(keys) - {key}), n=4, cutoff=0.75)
             if not key.startswith(f"{k}.")
             and difflib.SequenceMatcher(None, k.rpartition(".")[2], leaf).ratio() >= 0.75]
    return close, [k for k in close if k.rpartition(".")[0] == key.rpartition(".")[0]]


def _hint(key: str, keys: list[str], groups: set[str], cfg: DictConfig, choices: list[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in keys if k.rsplit(".", 1)[-1] == leaf and k.split(".")[0] == key.split(".")[0]]
    close, siblings = closest_keys(key, {*keys, *groups})
    matches = siblings or list(dict.fromkeys(same_leaf + close))[:3]
    if matches:
        return f"kd: {NO_KEY} '{key}'; did you mean {' or '.join(matches)}?"
    parent, _, _ = key.rpartition(".")
    while parent and OmegaConf.select(cfg, parent, default=_ABSENT, throw_on_missing=False) is _ABSENT:
        parent, _, _ = parent.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return f"kd: {NO_KEY} '{key}'; '{parent}' is a value ({node!r}), not a group of keys"
    under = f"keys under '{parent}'" if parent else "top-level keys"
    names = ", ".join(str(k) for k in node)
    show = " ".join(["python -m kd.run", *choices, "--cfg job"])
    return f"kd: {NO_KEY} '{key}'; {under}: {names} (`{show}` prints them all)"
