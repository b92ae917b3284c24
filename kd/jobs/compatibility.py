"""Start-up guards: data, models and loss must suit one modality, and text models one vocabulary.

Every data and model config declares its ``modality`` (``image``, ``text`` or ``lm``: causal language
modelling); a loss config may declare one or a list too, when it only works on those kinds of data.
"""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.models.text import load_tokenizer
from kd.task import MODALITIES
from kd.utils.config_files import conf_root


def declared_modality(cfg: DictConfig, group: str) -> str:
    """``<group>.modality``, which every data and model config declares."""
    modality = cfg[group].get("modality", None)
    if modality not in MODALITIES:
        name = cfg[group].get("name", "this config")
        raise ConfigError(
            f"{group}.modality={modality!r} ({group}={name}): declare `modality:` as one of {list(MODALITIES)} "
            f"in conf/{group}/{name}.yaml"
        )
    return modality


def loss_modalities(declared: str | list[str] | None, source: str) -> list[str]:
    """The modalities a loss config declares (one, a list, or none: every modality)."""
    if declared is None:
        return list(MODALITIES)
    values = [declared] if isinstance(declared, str) else list(declared)
    unknown = [v for v in values if v not in MODALITIES]
    if unknown or not values:
        raise ConfigError(f"loss.modality={declared!r} in {source}: declare one or a list of {list(MODALITIES)}")
    return values


def losses_for(modality: str) -> list[str]:
    """Names of the loss configs that work on ``modality`` (those declaring no modality work on all)."""
    names = []
    files = sorted((f for f in (conf_root() / "loss").iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    for file in files:
        with file.open(encoding="utf-8") as stream:
            declared = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(stream))).get("modality")
        if modality in loss_modalities(declared, f"conf/loss/{file.name}"):
            names.append(file.name.removesuffix(".yaml"))
    return names


def check_loss_modality(cfg: DictConfig) -> None:
    """A loss config may declare ``modality`` (one or a list); refuse it on other kinds of data."""
    choice = cfg.get("hydra_choices", {}).get("loss", "this loss")
    declared = cfg.loss.get("modality", None)
    modalities = loss_modalities(cast(list[str], OmegaConf.to_container(declared)) if OmegaConf.is_list(declared) else declared,
                                 f"loss={choice}")
    data_modality = declared_modality(cfg, "data")
    if data_modality not in modalities:
        raise ConfigError(
            f"loss={choice} works on {' and '.join(modalities)} models (loss.modality={declared}), but "
            f"data={cfg.data.name} is {data_modality} data. Losses for {data_modality} data: "
            f"{', '.join(losses_for(data_modality))}."
        )


def check_shared_vocabulary(cfg: DictConfig, with_teacher: bool) -> None:
    """Raise a ConfigError unless every model in the run suits the data's modality and, for text,
    reads the data's token ids the same way.

    One data module tokenises the texts once, so the student (and the teacher, when one is used)
    must share ``data.tokenizer``'s vocabulary; otherwise token ids, and every logit- or token-level
    loss built on them, would silently mean different things to the two models.
    """
    data_modality = declared_modality(cfg, "data")
    roles = ["student", "teacher"] if with_teacher else ["student"]
    for role in roles:
        modality = declared_modality(cfg, role)
        if modality != data_modality:
            raise ConfigError(
                f"data={cfg.data.name} is {data_modality} data but {role}={cfg[role].name} is a model for {modality} "
                f"({role}.modality={modality}). Pick a {role} whose config declares modality: {data_modality}."
            )
    if data_modality not in ("text", "lm"):  # token ids: one vocabulary for every model
        return
    data_tokenizer = cfg.data.get("tokenizer", None)
    if data_tokenizer is None:
        raise ConfigError(
            f"data.tokenizer is null: data={cfg.data.name} tokenises with the teacher's tokenizer, but "
            f"teacher={cfg.teacher.name} has none. Pick a text teacher (e.g. teacher=minilm_l6) or set data.tokenizer."
        )
    reference = load_tokenizer(data_tokenizer).get_vocab()
    for role in roles:
        name = cfg[role].tokenizer
        vocab = load_tokenizer(name).get_vocab()
        if vocab != reference:
            differing = len(set(vocab.items()) ^ set(reference.items()))
            raise ConfigError(
                f"{role}.tokenizer={name} does not match data.tokenizer={data_tokenizer}: vocabularies of "
                f"{len(vocab)} and {len(reference)} tokens, {differing} (token, id) pairs differ. Teacher "
                "and student must share a vocabulary; pick a student built on the teacher's tokenizer."
            )
