"""Start-up guards: models, data and loss must suit one modality, and text models one vocabulary."""

from __future__ import annotations

from omegaconf import DictConfig

from kd.errors import ConfigError
from kd.models.text import load_tokenizer


def check_loss_modality(cfg: DictConfig) -> None:
    """A loss config may declare ``modality: image`` or ``text``; refuse it on the other kind of data."""
    modality = cfg.loss.get("modality", None)
    data_modality = "text" if "tokenizer" in cfg.data else "image"
    if modality is not None and modality != data_modality:
        choice = cfg.get("hydra_choices", {}).get("loss", "this loss")
        raise ConfigError(
            f"loss={choice} works on {modality} models (loss.modality={modality}), but data={cfg.data.name} "
            f"is {data_modality} data. Losses for both: kd, dkd, dist, fkl, rkl, jsd, tvd, sp, rkd, pkt, cc, crd."
        )


def check_shared_vocabulary(cfg: DictConfig, with_teacher: bool) -> None:
    """Raise a ConfigError unless every model in the run reads the data's token ids the same way.

    One data module tokenises the texts once, so the student (and the teacher, when one is used)
    must share ``data.tokenizer``'s vocabulary; otherwise token ids, and every logit- or token-level
    loss built on them, would silently mean different things to the two models.
    """
    data_tokenizer = cfg.data.get("tokenizer", None)
    roles = ["student", "teacher"] if with_teacher else ["student"]
    is_text_data = "tokenizer" in cfg.data
    for role in roles:
        model_cfg = cfg[role]
        is_text_model = "tokenizer" in model_cfg
        if is_text_data != is_text_model:
            kind = "a text" if is_text_data else "an image"
            raise ConfigError(
                f"data={cfg.data.name} is {kind} data set but {role}={model_cfg.name} is "
                f"{'not ' if is_text_data else ''}a text model. Pick a {role} for this modality "
                f"(text models declare `tokenizer:` in conf/{role}/)."
            )
    if not is_text_data:
        return
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
