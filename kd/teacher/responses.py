"""Teacher responses for prompt/response data (``data.responses: teacher``): the teacher answers every
training prompt once, and the students of a sweep train on its answers instead of the data's own.

The answers are stored as text, one JSON line per generation batch, under
``<paths.teacher_outputs_dir>/responses/``, keyed by the teacher, the prompts (the data config) and the
sampling settings (``data.teacher_responses``; its ``seed`` too when sampled, not the run's, so the
runs of a seed sweep share them). A killed generation keeps its finished batches in
``<name>.partial.jsonl`` and a rerun continues from there; each batch samples from its own seed, so a
resumed file equals an uninterrupted one. The teacher's top-k distributions over its answers are
cached like any training split (keyed by this file), with the same exact-tail rules.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.errors import ConfigError
from kd.launch.processes import built_by_rank_zero
from kd.lm.answers import answer_prompts, stop_and_pad
from kd.teacher.weights import data_identity
from kd.utils.files import build_lock
from kd.utils.hashing import file_sha256, identity_hash
from kd.utils.progress import Progress

DEFAULTS = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "per_prompt": 1, "seed": 0, "batch_size": 16}
FORMAT = 1


def uses_teacher_responses(cfg: DictConfig) -> bool:
    """Whether the students train on the teacher's answers (``data.responses: teacher``)."""
    return OmegaConf.select(cfg, "data.responses", default="dataset") == "teacher"


def answers_scored_against_teacher(cfg: DictConfig) -> bool:
    """Whether the run scores its answers to held-out prompts against the teacher's (prompt/response data
    with ``data.generation.scored_prompts``): a baseline (SFT) run then loads the teacher too."""
    return "responses" in cfg.data and bool(OmegaConf.select(cfg, "data.generation.scored_prompts", default=0))


def response_settings(cfg: DictConfig) -> dict[str, Any]:
    """``data.teacher_responses`` with defaults (the schema checks the ranges)."""
    given = OmegaConf.select(cfg, "data.teacher_responses", default=None)
    settings = {**DEFAULTS, **cast(dict[str, Any], OmegaConf.to_container(given, resolve=True) if given else {})}
    if unknown := set(settings) - set(DEFAULTS):
        raise ConfigError(f"data.teacher_responses has unknown keys {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    return settings


def check_teacher_responses(cfg: DictConfig, datamodule: Any) -> None:
    """Refuse ``data.responses=teacher`` where it cannot work (before any work is done)."""
    if not uses_teacher_responses(cfg):
        return
    if not hasattr(datamodule, "use_responses"):
        raise ConfigError(
            f"data.responses=teacher: data={cfg.data.name} has no prompts for the teacher to answer; use a "
            "prompt/response data config (data=chat_chitchat, chat_sharegpt or chat_file), or loss=seqkd for "
            "teacher continuations of plain text"
        )
    if cfg.loss.get("teacher_generations"):
        raise ConfigError(
            "loss.teacher_generations (loss=seqkd, seqkd_fkl) continues plain-text blocks; with prompt/response "
            "data the teacher answers the prompts itself: use data.responses=teacher with loss=ce (sequence-level "
            "KD) or loss=fkl (token-level KD on the teacher's answers)"
        )


def generate_responses(
    teacher: nn.Module, prompts: list[list[int]], settings: dict[str, Any], tokenizer: Any, partial: Path,
    header: dict[str, Any],
) -> list[str]:
    """The teacher's answers (``per_prompt`` per prompt, in prompt order), written batch by batch to
    ``partial`` (its first line ``header``); batches already there are kept, not generated again."""
    done: list[list[str]] = []
    if partial.is_file():
        lines = partial.read_text().split("\n")
        if lines and lines[0] and json.loads(lines[0]) == header:
            for line in lines[1:]:
                try:
                    done.append(json.loads(line)["responses"])
                except (json.JSONDecodeError, KeyError):
                    break  # the line being written when the run was killed
    if not done:
        partial.write_text(json.dumps(header) + "\n")
    else:
        print(f"[kd] teacher responses: continuing {partial} after {len(done)} batches", flush=True)
        with open(partial, "w") as out:  # drop a half-written last line
            out.write("\n".join([json.dumps(header), *(json.dumps({"responses": r}) for r in done)]) + "\n")
    repeated = [p for p in prompts for _ in range(settings["per_prompt"])]
    size = settings["batch_size"]
    progress = Progress(len(repeated), "teacher responses", every=10.0)
    with open(partial, "a") as out:
        for number, start in enumerate(range(0, len(repeated), size)):
            if number < len(done):
                continue
            torch.manual_seed(settings["seed"] * 1_000_003 + number)  # each batch its own stream: a resumed run samples the same
            ids = answer_prompts(teacher, repeated[start : start + size], settings["max_new_tokens"],
                                 *stop_and_pad(tokenizer), temperature=settings["temperature"], top_p=settings["top_p"])
            texts = [tokenizer.decode(row, skip_special_tokens=True) for row in ids]
            out.write(json.dumps({"responses": texts}) + "\n")
            out.flush()
            done.append(texts)
            progress.update(min(start + size, len(repeated)))
    progress.close()
    return [text for batch in done for text in batch]


def use_teacher_responses(cfg: DictConfig, datamodule: Any, teacher: nn.Module, teacher_ckpt: Path | None) -> Path:
    """Replace the training split's responses by the teacher's answers (generated once, then read)."""
    settings = response_settings(cfg)
    datamodule.setup("fit")
    prompts, texts = datamodule.openings["train"], datamodule.prompts["train"]
    sampled = settings["temperature"] > 0
    identity = {
        "teacher": cfg.teacher.name,
        "teacher_sha256": file_sha256(teacher_ckpt) if teacher_ckpt else None,  # content, not path
        "teacher_net": OmegaConf.to_container(cfg.teacher.net, resolve=True),
        "data": data_identity(cfg),
        "settings": {k: settings[k] for k in ("temperature", "top_p", "max_new_tokens", "per_prompt")},
        "seed": settings["seed"] if sampled else None,  # greedy answers need no seed
        "format": FORMAT,
    }
    header = {"identity": json.loads(json.dumps(identity, default=str)), "prompts": len(prompts),
              "prompts_sha256": identity_hash(prompts, 64), "batch_size": settings["batch_size"]}
    folder = Path(cfg.paths.teacher_outputs_dir) / "responses"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cfg.teacher.name}-{cfg.data.name}-{identity_hash(identity, 12)}.jsonl"
    partial = path.with_suffix(".partial.jsonl")

    def read() -> list[str] | None:  # renamed into place whole: reading needs no lock
        lines = path.read_text().split("\n") if path.is_file() else []
        if lines and json.loads(lines[0]) == header:
            print(f"[kd] teacher responses read from {path}", flush=True)
            return [text for line in lines[1:] if line for text in json.loads(line)["responses"]]
        return None

    def read_or_generate(generate: bool) -> list[str] | None:
        if (answers := read()) is not None or not generate:
            return answers
        with build_lock(folder / ".lock"):  # parallel jobs answer once
            if (answers := read()) is not None:
                return answers
            how = (f"sampled at temperature {settings['temperature']:g}, top-p {settings['top_p']:g}" if sampled
                   else "greedy")
            print(f"[kd] teacher responses ({how}, up to {settings['max_new_tokens']} tokens, "
                  f"{settings['per_prompt']} per prompt): answering {len(prompts)} training prompts -> {path}",
                  flush=True)
            answers = generate_responses(teacher, prompts, settings, datamodule.tokenizer, partial, header)
            os.replace(partial, path)
            return answers

    # several processes: rank 0 generates, the others read once it has
    answers = built_by_rank_zero(read_or_generate, f"the teacher responses {path}",
                                 Path(cfg.paths.output_dir) / "failed.json")
    repeated = [p for p in texts for _ in range(settings["per_prompt"])]
    datamodule.use_responses("train", list(zip(repeated, answers, strict=True)))
    return path
