"""On-policy distillation (GKD, Agarwal et al., ICLR 2024; trl's ``GKDTrainer``): with probability
``lmbda`` a training batch's continuations are sampled from the student itself, and the loss (any
token-level divergence; GKD's is the generalised JSD) is taken on the student's own tokens, scored by
the teacher. Settings live under ``on_policy`` in the config (conf/train.yaml)."""

from __future__ import annotations

from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.data.lm import IGNORE_INDEX
from kd.errors import ConfigError
from kd.lm.answers import answer_prompts
from kd.task import task_of_config


class StudentSamples:
    """Replaces a share ``lmbda`` of the training batches by the student's continuations of their openings.

    Each block's first ``prompt_tokens`` tokens stay; the rest is sampled from the student (temperature
    ``temperature``, full vocabulary, no early stop at the end-of-text token: the corpus is packed the
    same way). Labels of the prompt positions are ignored, so every term sees only the sampled tokens.
    The batch loses its ``index`` (cached teacher outputs belong to the corpus text, not to samples) and
    is marked ``sampled``: only the terms that read the teacher score it, as in GKD (a hard-label CE
    term would train the student on its own samples); corpus batches keep every term.

    Args:
        lmbda: probability that a batch is replaced (GKD's ``lambda``; 0 = the fixed corpus only).
        prompt_tokens: tokens of each block kept as the prompt.
        temperature: sampling temperature of the student.
        block_size: tokens per training block, when known up front (checked against ``prompt_tokens``).
        answer_after_prompt: ``(end-of-turn token, padding token)`` for prompt/response rows: the prompt is
            each row's own (where its labels start) and the student answers it until the end-of-turn token
            or the row's end; ``prompt_tokens`` is then unused. None: blocks of plain text.
    """

    def __init__(
        self, lmbda: float = 0.5, prompt_tokens: int = 16, temperature: float = 1.0, block_size: int | None = None,
        answer_after_prompt: tuple[int, int] | None = None,
    ) -> None:
        if not 0.0 <= lmbda <= 1.0:
            raise ConfigError(f"on_policy.lmbda (share of on-policy batches) must be in [0, 1], got {lmbda}")
        if prompt_tokens < 1:
            raise ConfigError(f"on_policy.prompt_tokens must be >= 1, got {prompt_tokens}")
        if temperature <= 0:
            raise ConfigError(f"on_policy.temperature must be > 0, got {temperature}")
        self.lmbda, self.prompt_tokens, self.temperature = float(lmbda), prompt_tokens, float(temperature)
        self.answer_after_prompt = answer_after_prompt
        if block_size is not None and answer_after_prompt is None:
            self.check_length(block_size)

    def __call__(self, batch: dict[str, Any], student: nn.Module) -> dict[str, Any]:
        if not self.samples_this_step(batch):
            return batch
        if self.answer_after_prompt is not None:
            return self.answers(batch, student, *self.answer_after_prompt)
        ids = batch["inputs"]["input_ids"]
        length = ids.shape[1]
        self.check_length(length)
        sequences = self.sample(student, ids[:, : self.prompt_tokens], length + 1 - self.prompt_tokens)
        labels = sequences[:, 1:].clone()
        labels[:, : self.prompt_tokens - 1] = IGNORE_INDEX
        inputs = {"input_ids": sequences[:, :-1], "attention_mask": torch.ones_like(sequences[:, :-1])}
        return {"inputs": inputs, "labels": labels, "sampled": True}

    def samples_this_step(self, batch: dict[str, Any]) -> bool:
        """Whether this batch is replaced: a draw from the batch's ``step_seed``, which every process of a
        multi-process job shares, so they all call ``generate()`` together (else the global RNG)."""
        if self.lmbda in (0.0, 1.0):
            return self.lmbda == 1.0
        seed = batch.get("step_seed")
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        return bool(torch.rand((), generator=generator).item() < self.lmbda)

    def answers(self, batch: dict[str, Any], student: nn.Module, stop: int, pad: int) -> dict[str, Any]:
        """Each row's prompt (the tokens before its first scored label) and the student's sampled answer
        with its end-of-turn token, cut or padded to the row's length; prompt and padding labels ignored."""
        ids, labels = batch["inputs"]["input_ids"], batch["labels"]
        width = ids.shape[1] + 1
        starts = (labels != IGNORE_INDEX).int().argmax(dim=1).tolist()  # label t scores token t + 1
        prompts = [ids[row, : start + 1].tolist() for row, start in enumerate(starts)]
        answers = answer_prompts(student, prompts, width - min(map(len, prompts)), stop, pad, self.temperature)
        sequences = torch.full((len(prompts), width), pad, dtype=torch.long)
        new_labels = torch.full((len(prompts), width - 1), IGNORE_INDEX, dtype=torch.long)
        for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
            tokens = (prompt + answer + [stop])[:width]
            sequences[row, : len(tokens)] = torch.as_tensor(tokens)
            new_labels[row, len(prompt) - 1 : len(tokens) - 1] = sequences[row, len(prompt) : len(tokens)]
        inputs = {"input_ids": sequences[:, :-1], "attention_mask": torch.ones_like(sequences[:, :-1])}
        return {"inputs": inputs, "labels": new_labels, "sampled": True}

    def check_length(self, length: int) -> None:
        """The prompt must leave tokens to sample in a block of ``length`` tokens."""
        if self.prompt_tokens >= length:
            raise ConfigError(
                f"on_policy.prompt_tokens={self.prompt_tokens} leaves nothing to sample in blocks of "
                f"data.module.block_size={length} tokens; choose fewer than {length}"
            )

    def sample(self, student: nn.Module, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """``prompt`` followed by ``new_tokens`` sampled tokens, ``(B, P + new_tokens)``."""
        was_training = student.training
        student.eval()
        try:
            return cast(Any, student).generate(  # a Hugging Face model; nn.Module types attributes as Tensor | Module
                input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=self.temperature,
                top_k=0, top_p=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens, eos_token_id=None,
                pad_token_id=getattr(student.config, "pad_token_id", None) or 0,
            )
        finally:
            student.train(was_training)


def student_samples(
    cfg: DictConfig, needs_teacher: bool, terms: list[str], answer_after_prompt: tuple[int, int] | None = None
) -> StudentSamples | None:
    """The run's ``on_policy`` settings as a batch transform, or None when ``on_policy.lmbda`` is 0;
    ``answer_after_prompt``: prompt/response data's end-of-turn and padding tokens (``StudentSamples``)."""
    settings = cast(dict[str, Any], OmegaConf.to_container(cfg.get("on_policy") or {}, resolve=True))
    if not settings.get("lmbda"):
        return None
    if not task_of_config(cfg).language_model:
        raise ConfigError(
            f"on_policy.lmbda={settings['lmbda']}: the student samples continuations only on language-model "
            f"data, and data={cfg.data.name} is {cfg.data.get('modality')} data. Set on_policy.lmbda=0."
        )
    if not needs_teacher:
        raise ConfigError(
            f"on_policy.lmbda={settings['lmbda']} with loss terms {terms}: on-policy samples need a teacher "
            "term to score them (e.g. loss=jsd loss.alpha=1, as GKD)"
        )
    return StudentSamples(**settings, block_size=cfg.data.module.block_size, answer_after_prompt=answer_after_prompt)
