"""Check every value of a composed config before a run does anything (typed configs).

Each leaf key is checked against its rule in ``kd.config.schema`` and, when it is an argument of a
``_target_``, against that callable's type annotation. A key that only refers to another
(``temperature: ${loss.temperature}``) passes its constraints to the key it refers to, so errors name
the key a user types (``loss.temperature``, not ``loss.terms.kd.fn.temperature``); a value derived
from others (``${one_minus:${loss.alpha}}``) is reported only when the keys it comes from are valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from kd.config.rules import Rule
from kd.config.schema import rule_for
from kd.errors import ConfigError
from kd.jobs.annotations import annotation_problem, checkable, parameter_annotation
from kd.jobs.modality import check_student_and_loss
from kd.jobs.unread_keys import unread_keys
from kd.utils.wandb_first import start_wandb_first

ABSENT = object()
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
REFERENCE = re.compile(r"^\$\{(\.*)([A-Za-z_][\w.]*)\}$")
MENTIONS = re.compile(r"\$\{(?:oc\.select:)?(\.*[A-Za-z_][\w.]*)[,}]")


@dataclass
class Leaf:
    """One leaf of the config: its key, its unresolved value and the ``_target_`` it is an argument of."""

    key: str
    raw: Any
    target: Callable[..., Any] | None = None


Constraints = tuple[dict[str, list[Any]], dict[str, list[str]], list[Leaf]]  # by key, derived, leaves (constraints())


def leaves(node: Any, prefix: str = "", target: Callable[..., Any] | None = None, locate: bool = True) -> list[Leaf]:
    """Every leaf under ``node``; lists and mappings that a rule covers whole count as leaves. With
    ``locate``, each leaf knows the ``_target_`` it is an argument of (imported to read its annotations)."""
    if isinstance(node, DictConfig) and not (prefix and _whole(prefix)):
        found = []
        inner = _locate(node, prefix) if locate and "_target_" in node else None
        for name in node:
            if name in HYDRA_KEYS or (not prefix and name == "hydra"):
                continue
            key = f"{prefix}.{name!s}" if prefix else str(name)
            found += leaves(node._get_node(name), key, inner, locate)
        return found
    return [Leaf(prefix, _raw(node), target)]


def _whole(key: str) -> bool:
    rule = rule_for(key)
    return rule is not None and rule.kind == "dict"


def _raw(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=False)
    return node._value()


def _locate(node: DictConfig, key: str) -> Callable[..., Any]:
    target = node._get_node("_target_")
    assert target is not None  # callers check ``"_target_" in node``
    path = target._value()
    try:
        return get_object(path)
    except Exception as err:  # noqa: BLE001 - any import failure is the config's fault
        raise ConfigError(f"{key}._target_={path}: cannot import it ({err})") from None


def source_of(key: str, raw: Any) -> str | None:
    """The key a plain reference ``${a.b}`` (or relative ``${.x}``, ``${..x}``) points at, else None."""
    match = REFERENCE.match(raw) if isinstance(raw, str) else None
    if match is None:
        return None
    return _absolute(key, match.group(1), match.group(2))


def _absolute(key: str, dots: str, name: str) -> str:
    if not dots:
        return name
    parent = key.split(".")[: -len(dots)]
    return ".".join([*parent, name])


def mentioned(key: str, raw: Any) -> list[str]:
    """The keys a derived value (``${one_minus:${loss.alpha}}``) is computed from."""
    if not isinstance(raw, str):
        return []
    out = []
    for ref in MENTIONS.findall(raw):
        dots = len(ref) - len(ref.lstrip("."))
        out.append(_absolute(key, ref[:dots], ref[dots:]))
    return out


def constraints(cfg: DictConfig, imports: bool = True) -> Constraints:
    """Rules and annotations by the key they constrain (references pass theirs to their source),
    the keys of derived values with the keys they come from, and all leaves. Without ``imports``: the
    rules that import nothing only (no ``_target_`` is imported)."""
    all_leaves = leaves(cfg, locate=imports)
    points_to = {leaf.key: src for leaf in all_leaves if (src := source_of(leaf.key, leaf.raw))}

    def owner(key: str) -> str:
        seen = set()
        while key in points_to and key not in seen:
            seen.add(key)
            key = points_to[key]
        return key

    by_key: dict[str, list[Any]] = {}
    derived: dict[str, list[str]] = {}
    for leaf in all_leaves:
        annotation = parameter_annotation(leaf.target, leaf.key.rsplit('.', 1)[-1])
        rule = rule_for(leaf.key)
        rule = rule if rule is None or imports or not rule.imports else None
        checks = [c for c in (rule, annotation if checkable(annotation) else None) if c is not None]
        by_key.setdefault(owner(leaf.key), []).extend(checks)
        if leaf.key not in points_to and (refs := mentioned(leaf.key, leaf.raw)):
            derived[leaf.key] = [owner(r) for r in refs]
    return by_key, derived, all_leaves


def problems(cfg: DictConfig, imports: bool = True, known: Constraints | None = None) -> dict[str, tuple[Any, str, str]]:
    """``{key: (value, what is wrong, what the key means)}`` for every value that breaks a constraint
    (without ``imports``: a rule that imports nothing; ``known``: :func:`constraints` already found)."""
    by_key, derived, _ = known or constraints(cfg, imports)
    found: dict[str, tuple[Any, str, str]] = {}
    for key, checks in by_key.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True, default=ABSENT)
        except Exception:  # noqa: BLE001, S112 - not resolvable yet (e.g. ${hydra:...} before the job starts)
            continue
        if value is ABSENT:  # a reference to a key this config lacks: the model/data checks say why
            continue
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        decided = any(isinstance(c, Rule) and value in c.decided_by_kd for c in checks)  # e.g. auto
        for check in checks:
            if decided and not isinstance(check, Rule):
                continue
            problem = check.problem(value) if isinstance(check, Rule) else annotation_problem(value, check)
            if problem is not None:
                found[key] = (value, problem, check.help if isinstance(check, Rule) else "")
                break
    return {k: v for k, v in found.items() if not any(r in found for r in derived.get(k, []))}


def uncovered(cfg: DictConfig) -> list[str]:
    """Leaf keys that no rule and no annotation types (references are typed by their source)."""
    by_key, _, all_leaves = constraints(cfg)
    return sorted(leaf.key for leaf in all_leaves if source_of(leaf.key, leaf.raw) is None and not by_key.get(leaf.key))


def unread(cfg: DictConfig, known: Constraints | None = None) -> dict[str, tuple[Any, str, str]]:
    """``{key: (value, why nothing reads it, "")}`` for each key that no rule covers, no ``_target_``
    takes and no value refers to (``kd.jobs.unread_keys``; ``known``: :func:`constraints` already found)."""
    by_key, _, all_leaves = known or constraints(cfg)
    values = {leaf.key: leaf.raw for leaf in all_leaves if source_of(leaf.key, leaf.raw) is None}  # not references
    untyped = {key for key in values if not by_key.get(key)}
    refs = {r for leaf in all_leaves for r in [source_of(leaf.key, leaf.raw), *mentioned(leaf.key, leaf.raw)] if r}
    found = unread_keys(cfg, values, untyped, refs, lambda key: _locate(OmegaConf.select(cfg, key), key))
    shown = {key: values[key] if key in values else OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=False)
             for key in found}  # a leaf, or an argument holding leaves
    return {key: (shown[key], why, "") for key, why in found.items()}


def check_config(cfg: DictConfig, overrides: Sequence[str] = (), early_wandb: bool = True) -> None:
    """Raise one :class:`ConfigError` naming every bad value (keys set by ``overrides`` first).

    The rules that import nothing come first: a value they refuse is refused before torch, Lightning
    or a model's module is imported (within a second); then (with ``early_wandb``, W&B's client and
    service started for a job that logs there) the ``_target_`` annotations and the rules that build
    objects. Between the two, the student and the loss must suit the data (``kd.jobs.modality``): on data
    of another kind, the later checks mean little (a text data set with an image teacher leaves
    ``data.tokenizer`` unset)."""
    found = problems(cfg, imports=False)
    if not found:
        check_student_and_loss(cfg)
    if not found and early_wandb:
        start_wandb_first(cfg)  # the checks below import torch; W&B's client and service start faster before it
    known = constraints(cfg) if not found else None  # for the annotations and the unread keys alike
    if known is not None:
        found = problems(cfg, known=known)
    nouns = ("invalid config value", "invalid config values")
    if known is not None and not found:
        found, nouns = unread(cfg, known), ("config key that nothing reads", "config keys that nothing reads")
    if not found:
        return
    typed = [str(o).lstrip("+~").split("=", 1)[0] for o in overrides]

    def typed_at(key: str) -> int:  # the place of the override that set ``key`` (untyped keys last)
        return next((i for i, t in enumerate(typed) if key == t or key.startswith(t + ".")), len(typed))

    keys = sorted(found, key=lambda k: (typed_at(k), k))
    lines = []
    for key in keys:
        value, problem, meaning = found[key]
        lines.append(f"{key}={_shown(value)}: {problem}" + (f" ({meaning})" if meaning else ""))
    head = nouns[0] if len(lines) == 1 else f"{len(lines)} {nouns[1]}"
    text = "; ".join(lines)
    raise ConfigError(f"{head}: {text}{'' if text.endswith('?') else '.'} The options and their meaning: conf/ and "
                      "`python -m kd.run --help`.")


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)
