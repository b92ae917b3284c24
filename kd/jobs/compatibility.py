"""Start-up guard: the models of a text or language-model run read one vocabulary (and suit the data's
modality: ``kd.jobs.modality``)."""

from __future__ import annotations

from omegaconf import DictConfig

from kd.errors import ConfigError
from kd.jobs.modality import check_data_tokenizer, check_model_modality, declared_modality
from kd.models.text import load_tokenizer


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
        check_model_modality(cfg, role)
    if data_modality not in ("text", "lm"):  # token ids: one vocabulary for every model
        return
    check_data_tokenizer(cfg)
    data_tokenizer = cfg.data.tokenizer
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
