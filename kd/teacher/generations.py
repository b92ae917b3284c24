"""Sequence-level KD (Kim & Rush, 2016; trl's ``seq_kd``): the teacher continues the opening of every
training block once (sampled at ``temperature``, or greedy at 0); the student then trains on those
texts instead of the corpus, the prompt's labels ignored (it learns the teacher's continuations only).

Settings live under ``loss.teacher_generations`` (see conf/loss/seqkd.yaml). The prompts and
continuations are stored as JSON text under ``<paths.teacher_outputs_dir>/generations/``, keyed by the
teacher, the data and the generation settings (and the seed when sampled), and checked against the
training split's token checksum before reuse; being text (re-tokenised with the data's tokenizer),
they also serve a student on another tokenizer. Token-level KD on them (``loss=seqkd_fkl``) reads the
teacher's distributions over the generated blocks (cached like any training split).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kd.data.lm import TokenBlocks
from kd.errors import ConfigError
from kd.launch.processes import built_by_rank_zero
from kd.taps import model_device
from kd.teacher.weights import data_identity
from kd.utils.files import build_lock, write_text_atomically
from kd.utils.hashing import file_sha256, identity_hash

DEFAULTS = {"prompt_tokens": 16, "temperature": 1.0, "batch_size": 16}
FORMAT = 2  # 2: prompts and continuations stored apart, the prompt's labels ignored (1: whole texts)


def generation_settings(cfg: DictConfig) -> dict[str, Any]:
    """``loss.teacher_generations`` with defaults, checked (``temperature`` 0 = greedy)."""
    settings = {**DEFAULTS, **cast(dict[str, Any], OmegaConf.to_container(cfg.loss.teacher_generations, resolve=True))}
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
        prompt = blocks[start : start + settings["batch_size"], :prompt_len].to(model_device(teacher))
        ids = cast(Any, teacher).generate(  # a Hugging Face model; nn.Module types attributes as Tensor | Module
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=sampled,
            max_new_tokens=new_tokens,
            eos_token_id=None,
            pad_token_id=getattr(teacher.config, "pad_token_id", None) or 0,
            **extra,
        )
        out += ids.cpu().tolist()
        print(f"[kd] teacher generations: {min(start + len(prompt), len(blocks))}/{len(blocks)} blocks", flush=True)
    return out


def use_teacher_generations(cfg: DictConfig, datamodule: Any, teacher: nn.Module, teacher_ckpt: Path | None) -> Path:
    """Replace the training split by the teacher's continuations of its blocks (generated once, then read)."""
    settings = generation_settings(cfg)
    datamodule.setup("fit")
    corpus = datamodule.splits["train"]
    identity = {
        "teacher": cfg.teacher.name,
        "teacher_sha256": file_sha256(teacher_ckpt) if teacher_ckpt else None,  # content, not path
        "data": data_identity(cfg),
        "teacher_net": OmegaConf.to_container(cfg.teacher.net, resolve=True),
        **{k: settings[k] for k in ("prompt_tokens", "temperature")},
        "seed": cfg.seed if settings["temperature"] > 0 else None,  # greedy continuations need no seed
        "format": FORMAT,
    }
    expected = {"identity": identity, "corpus_sha256": corpus.fingerprint(), "blocks": len(corpus)}
    folder = Path(cfg.paths.teacher_outputs_dir) / "generations"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cfg.teacher.name}-{cfg.data.name}-{identity_hash(identity, 12)}.json"
    tokenizer = datamodule.tokenizer

    def read() -> dict[str, Any] | None:  # written whole by rename: reading needs no lock
        stored = json.loads(path.read_text()) if path.is_file() else {}
        return stored if {k: stored.get(k) for k in expected} == json.loads(json.dumps(expected, default=str)) else None

    def read_or_generate(generate: bool) -> dict[str, Any] | None:
        stored = read()
        if stored is None and generate:
            with build_lock(folder / ".lock"):  # parallel jobs generate once
                if (stored := read()) is None:
                    torch.manual_seed(cfg.seed)
                    how = f"sampled at temperature {settings['temperature']:g}" if settings["temperature"] > 0 else "greedy"
                    print(f"[kd] teacher generations ({how}): continuing {len(corpus)} training blocks -> {path}", flush=True)
                    ids = continue_blocks(teacher, corpus.blocks, settings)
                    cut = settings["prompt_tokens"]
                    generated = {**expected, "prompts": [tokenizer.decode(row[:cut]) for row in ids],
                                 "continuations": [tokenizer.decode(row[cut:]) for row in ids]}
                    write_text_atomically(path, json.dumps(generated, default=str))
                    return generated
        if stored is not None:
            print(f"[kd] teacher generations read from {path}", flush=True)
        return stored

    # several processes: rank 0 generates, the others read once it has
    stored = built_by_rank_zero(read_or_generate, f"the teacher generations {path}",
                                Path(cfg.paths.output_dir) / "failed.json")
    datamodule.splits["train"] = generated_blocks(tokenizer, stored["prompts"], stored["continuations"],
                                                  datamodule.block_size)
    return path


def generated_blocks(tokenizer: Any, prompts: list[str], continuations: list[str], block_size: int) -> TokenBlocks:
    """One block per generation, ``prompt + continuation`` re-tokenised, cut or padded (with the end-of-text
    token) to ``block_size + 1`` tokens; labels inside the prompt and in the padding are ignored."""
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    continuation_ids = tokenizer(continuations, add_special_tokens=False)["input_ids"]
    pad = tokenizer.eos_token_id
    blocks = torch.full((len(prompts), block_size + 1), pad, dtype=torch.long)
    ignored = torch.ones(len(prompts), block_size, dtype=torch.bool)
    for row, (prompt, continuation) in enumerate(zip(prompt_ids, continuation_ids, strict=True)):
        ids = (prompt + continuation)[: block_size + 1]
        blocks[row, : len(ids)] = torch.as_tensor(ids)
        ignored[row, max(len(prompt) - 1, 0) : len(ids) - 1] = False  # label i is token i + 1: the continuation's
    return TokenBlocks(blocks, ignored)
