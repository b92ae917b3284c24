"""A DataModule for causal language modelling: documents split by document, tokenised once, packed
into fixed-length blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as L
import torch
from torch.utils.data import Dataset

from kd.data.batches import SplitLoaders, ViewBatch
from kd.errors import ConfigError
from kd.models.text import load_tokenizer
from kd.utils.hashing import tensors_sha256

OPENING_TOKENS = 64  # tokens kept from the start of each document (prompts for generations)
IGNORE_INDEX = -100  # a label no loss term or metric scores


class TokenBlocks(Dataset):
    """Blocks of ``block_size + 1`` token ids; a batch's inputs are all but the last token of each
    block and its labels all but the first (the next token at every position). ``ignored`` (``(N,
    block_size)``, bool, optional) marks labels no loss scores (-100): a prompt, padding."""

    def __init__(self, blocks: torch.Tensor, ignored: torch.Tensor | None = None) -> None:
        self.blocks, self.ignored = blocks, ignored

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, indices: list[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        rows = self.blocks[index]
        inputs = {"input_ids": rows[:, :-1], "attention_mask": torch.ones_like(rows[:, :-1])}
        labels = rows[:, 1:] if self.ignored is None else rows[:, 1:].masked_fill(self.ignored[index], IGNORE_INDEX)
        batch = {"inputs": inputs, "labels": labels, "index": index}
        if isinstance(indices, ViewBatch):  # training batches: the step's seed, the same in every process
            batch["step_seed"] = torch.tensor(indices.step_seed, dtype=torch.long)
        return batch

    def fingerprint(self) -> str:
        """SHA-256 of the token ids and ignored labels (the teacher-output cache checks it)."""
        return tensors_sha256([self.blocks] + ([self.ignored] if self.ignored is not None else []))


def example_token_batch(tokenizer: Any, batch_size: int) -> dict[str, torch.Tensor]:
    """A short tokenised batch of ``batch_size`` rows (reads no data): what start-up checks feed the models."""
    ids = torch.as_tensor([tokenizer("an example of text")["input_ids"]] * batch_size)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def utf8_bytes_per_token(tokenizer: Any, ids: torch.Tensor) -> float:
    """UTF-8 bytes per token of the text ``ids`` decode to (bits per byte = log2(ppl) / this)."""
    text = tokenizer.decode(ids.reshape(-1).tolist(), clean_up_tokenization_spaces=False)
    return len(text.encode("utf-8")) / max(1, ids.numel())


def split_documents(count: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Document indices of ``train``/``val``/``test`` (a fixed random split by document, at least one each)."""
    if count < 3:
        raise ConfigError(f"the data (data.module.source) gives {count} document(s) or conversation(s); a "
                          "train/val/test split by document needs at least 3: give more of them")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    n_test, n_val = max(1, round(test_fraction * count)), max(1, round(val_fraction * count))
    return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}


def pack(token_lists: list[list[int]], separator: int, block_size: int, max_blocks: int | None) -> torch.Tensor:
    """Documents joined by ``separator`` and cut into ``(N, block_size + 1)`` blocks (the rest dropped)."""
    stream: list[int] = []
    for ids in token_lists:
        stream += [*ids, separator]
        if max_blocks is not None and len(stream) > max_blocks * block_size + 1:
            break
    count = (len(stream) - 1) // block_size
    if max_blocks is not None:
        count = min(count, max_blocks)
    flat = torch.as_tensor(stream[: count * block_size + 1], dtype=torch.long)
    return torch.stack([flat[i * block_size : (i + 1) * block_size + 1] for i in range(count)]) if count else flat[:0]


class LMDataModule(SplitLoaders, L.LightningDataModule):
    """Next-token prediction batches: ``inputs`` = ``{input_ids, attention_mask}`` (B, block_size),
    ``labels`` (B, block_size) = the next token at each position, ``index``.

    Args:
        source: ``() -> documents``, e.g. ``kd.data.lm_sources.python_docs``.
        tokenizer: the tokenizer's ``name_or_path`` (see ``kd.models.names``); normally the teacher's.
        block_size: tokens per training sequence.
        batch_size: training batch size.
        eval_batch_size: validation and test batch size.
        val_fraction: share of the documents held out for validation.
        test_fraction: share of the documents held out for the final test.
        split_seed: seed of the split by document.
        max_blocks: at most this many blocks per split (``train``, ``val``, ``test``), or null for all.
    """

    def __init__(
        self,
        source: Callable[[], list[str]],
        tokenizer: str,
        block_size: int = 128,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        max_blocks: dict[str, int | None] | None = None,
    ) -> None:
        super().__init__()
        self.source, self.tokenizer_name, self.block_size = source, tokenizer, block_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.max_blocks = dict(max_blocks or {})
        self.splits: dict[str, TokenBlocks] = {}
        self.openings: dict[str, list[list[int]]] = {}  # the first OPENING_TOKENS tokens of each document
        self.bytes_per_token: dict[str, float] = {}  # UTF-8 bytes per label token (for bits per byte)

    @property
    def tokenizer(self):
        return load_tokenizer(self.tokenizer_name)

    def example_inputs(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        """A short tokenised batch (reads no data)."""
        return example_token_batch(self.tokenizer, batch_size)

    def generation_prompts(self, split: str, tokens: int) -> list[list[int]]:
        """The first ``tokens`` tokens of each document of ``split`` that has as many (prompts to continue)."""
        return [ids[:tokens] for ids in self.openings[split] if len(ids) >= tokens]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        documents = self.source()
        if not any(doc.strip() for doc in documents):
            raise ConfigError(f"the corpus of data.module.source ({self.source}) holds no text: every document is empty")
        separator = self.tokenizer.eos_token_id
        if separator is None:
            raise ConfigError(f"tokenizer {self.tokenizer_name} has no end-of-text token to separate documents")
        for name, idx in split_documents(len(documents), self.val_fraction, self.test_fraction, self.split_seed).items():
            ids = self.tokenizer([documents[i] for i in idx], add_special_tokens=False)["input_ids"]
            blocks = pack(ids, separator, self.block_size, self.max_blocks.get(name))
            if len(blocks) == 0:
                raise ConfigError(
                    f"the {name} split holds fewer than data.module.block_size={self.block_size} tokens; "
                    "use a larger corpus or split fraction, or a smaller block_size"
                )
            self.splits[name] = TokenBlocks(blocks)
            self.openings[name] = [doc[:OPENING_TOKENS] for doc in ids]
            if name != "train":  # evaluated splits only (decoding the training set would cost seconds)
                self.bytes_per_token[name] = utf8_bytes_per_token(self.tokenizer, blocks[:, 1:])
