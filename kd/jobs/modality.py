"""Data, models and loss must suit one modality: every data and model config declares its ``modality``
(``image``, ``text`` or ``lm``: causal language modelling); a loss config may declare one or a list
too, when it only works on those kinds of data. Imports nothing heavy: ``kd.jobs.validate`` checks the
student, the loss and the data's tokenizer right after the values that import nothing, before the
``_target_`` annotations (a text data set with an image teacher is refused as such, not by the
``data.tokenizer`` it leaves unset); the teacher is checked where the job knows it reads one.
"""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from kd.errors import ConfigError
from kd.task import MODALITIES
from kd.utils.config_files import conf_root


def choice(cfg: DictConfig, group: str, default: str) -> str:
    """The option chosen for ``group`` (``loss=kd``: ``kd``): from the job's ``hydra_choices``, or from
    Hydra's own config before the job starts."""
    for key in (f"hydra_choices.{group}", f"hydra.runtime.choices.{group}"):
        found = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if found is not None:
            return str(found)
    return default


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
    name = choice(cfg, "loss", "this loss")
    declared = cfg.loss.get("modality", None)
    modalities = loss_modalities(cast(list[str], OmegaConf.to_container(declared)) if OmegaConf.is_list(declared) else declared,
                                 f"loss={name}")
    data_modality = declared_modality(cfg, "data")
    if data_modality not in modalities:
        raise ConfigError(
            f"loss={name} works on {' and '.join(modalities)} models (loss.modality={declared}), but "
            f"data={cfg.data.name} is {data_modality} data. Losses for {data_modality} data: "
            f"{', '.join(losses_for(data_modality))}."
        )


def check_model_modality(cfg: DictConfig, role: str) -> None:
    """Refuse a ``role`` (``student``, ``teacher``) model for another modality than the data's."""
    data_modality = declared_modality(cfg, "data")
    modality = declared_modality(cfg, role)
    if modality != data_modality:
        raise ConfigError(
            f"data={cfg.data.name} is {data_modality} data but {role}={cfg[role].name} is a model for {modality} "
            f"({role}.modality={modality}). Pick a {role} whose config declares modality: {data_modality}."
        )


def check_data_tokenizer(cfg: DictConfig) -> None:
    """Text and token data name a tokenizer (by default the teacher's: an image teacher has none)."""
    if declared_modality(cfg, "data") in ("text", "lm") and cfg.data.get("tokenizer", None) is None:
        raise ConfigError(
            f"data.tokenizer is null: data={cfg.data.name} tokenises with the teacher's tokenizer, but "
            f"teacher={cfg.teacher.name} has none. Pick a text teacher (e.g. teacher=minilm_l6) or set data.tokenizer."
        )


def check_student_and_loss(cfg: DictConfig) -> None:
    """The checks every run needs: the student and the loss suit the data, which names its tokenizer."""
    check_model_modality(cfg, "student")
    check_loss_modality(cfg)
    check_data_tokenizer(cfg)
