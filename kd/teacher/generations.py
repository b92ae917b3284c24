"""Sequence-level KD (Kim & Rush, 2016): the teacher continues the opening of every training block once;
the student then trains on those texts instead of the corpus.

Settings live under ``loss.teacher_generations`` (see conf/loss/seqkd.yaml). The texts are stored as
JSON under ``<paths.teacher_outputs_dir>/generations/``, keyed by the teacher, the data and the
generation settings, and checked against the training split's token checksum before reuse; they
are text (re-tokenised with the data's tokenizer), so a student on another tokenizer can use them.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.data.lm import TokenBlocks, pack
from kd.errors import ConfigError
from kd.teacher.weights import data_identity
from kd.utils.hashing import identity_hash
from kd.utils.processes import is_rank_zero, wait_for_rank_zero

DEFAULTS = {"prompt_tokens": 16, "temperature": 0.0, "batch_size": 16}


def generation_settings(cfg: DictConfig) -> dict[str, Any]:
    """``loss.teacher_generations`` with defaults, checked (``temperature`` 0 = greedy)."""
    settings = {**DEFAULTS, **OmegaConf.to_container(cfg.loss.teacher_generations, resolve=True)}
    block = cfg.data.module.block_size
    if not 1 <= settings["prompt_tokens"] < block:
        raise ConfigError(
            f"loss.teacher_generations.prompt_tokens={settings['prompt_tokens']}: give 1 to {block - 1} "
            f"(fewer than data.module.block_size={block}, so the teacher has something to continue)"
        )
    if settings["temperature"] < 0:
        raise ConfigError(f"loss.teacher_generations.temperature={settings['temperature']}: give 0 (greedy) or more")
    return settings


@torch.no_grad()
def continue_blocks(teacher: nn.Module, blocks: torch.Tensor, settings: dict[str, Any]) -> list[list[int]]:
    """Each block's first ``prompt_tokens`` tokens followed by the teacher's continuation to the block's length."""
    teacher.eval()
    prompt_len, new_tokens = settings["prompt_tokens"], blocks.shape[1] - settings["prompt_tokens"]
    sampled = settings["temperature"] > 0
    extra = {"temperature": settings["temperature"], "top_k": 0, "top_p": 1.0} if sampled else {}
    out = []
    for start in range(0, len(blocks), settings["batch_size"]):
        prompt = blocks[start : start + settings["batch_size"], :prompt_len]
        ids = teacher.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=sampled,
            max_new_tokens=new_tokens,
            eos_token_id=None,
            pad_token_id=getattr(teacher.config, "pad_token_id", None) or 0,
            **extra,
        )
        out += ids.tolist()
        print(f"[kd] teacher generations: {min(start + len(prompt), len(blocks))}/{len(blocks)} blocks", flush=True)
    return out


def use_teacher_generations(cfg: DictConfig, datamodule: Any, teacher: nn.Module, teacher_ckpt: Path | None) -> Path:
    """Replace the training split by the teacher's continuations of its blocks (generated once, then read)."""
    settings = generation_settings(cfg)
    datamodule.setup("fit")
    corpus = datamodule.splits["train"]
    identity = {
        "teacher": cfg.teacher.name,
        "teacher_checkpoint": str(teacher_ckpt),
        "data": data_identity(cfg),
        "teacher_net": OmegaConf.to_container(cfg.teacher.net, resolve=True),
        **{k: settings[k] for k in ("prompt_tokens", "temperature")},
        "seed": cfg.seed if settings["temperature"] > 0 else None,  # greedy continuations need no seed
    }
    expected = {"identity": identity, "corpus_sha256": corpus.fingerprint(), "blocks": len(corpus)}
    folder = Path(cfg.paths.teacher_outputs_dir) / "generations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cfg.teacher.name}-{cfg.data.name}-{identity_hash(identity, 12)}.json"

    def read_or_generate(generate: bool) -> dict[str, Any] | None:
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = json.loads(path.read_text()) if path.is_file() else {}
            if {k: stored.get(k) for k in expected} == json.loads(json.dumps(expected, default=str)):
                print(f"[kd] teacher generations read from {path}", flush=True)
            elif generate:
                torch.manual_seed(cfg.seed)
                print(f"[kd] teacher generations: continuing {len(corpus)} training blocks -> {path}", flush=True)
                ids = continue_blocks(teacher, corpus.blocks, settings)
                stored = {**expected, "texts": [datamodule.tokenizer.decode(row) for row in ids]}
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(stored, default=str))
                os.replace(tmp, path)
            else:
                stored = None
            fcntl.flock(lock, fcntl.LOCK_UN)
        return stored

    if is_rank_zero():  # several processes: rank 0 generates, the others read once it has
        stored = read_or_generate(True)
    else:
        failed = Path(cfg.paths.output_dir) / "failed.json"
        stored = wait_for_rank_zero(lambda: read_or_generate(False), f"the teacher generations {path}", failed)
    tokenizer = datamodule.tokenizer
    ids = tokenizer(stored["texts"], add_special_tokens=False)["input_ids"]
    datamodule.splits["train"] = TokenBlocks(pack(ids, tokenizer.eos_token_id, datamodule.block_size, None))
    return path
