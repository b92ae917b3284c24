"""A DataModule for text classification: tokenised once, padded per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning.pytorch as L
import torch
from torch.utils.data import Dataset

from kd.data.batches import SplitLoaders
from kd.data.splits import stratified_split, stratified_subset
from kd.data.text_sources import TextSet
from kd.errors import ConfigError
from kd.models.text import load_tokenizer
from kd.utils.hashing import tensors_sha256


class TokenizedTexts(Dataset):
    """Token-id sequences and labels; indexing with a list of indices returns a padded batch."""

    def __init__(self, token_ids: list[list[int]], labels: Sequence[int], pad_id: int) -> None:
        if len(token_ids) != len(labels):
            raise ValueError(f"{len(token_ids)} texts but {len(labels)} labels")
        self.token_ids, self.labels, self.pad_id = token_ids, torch.as_tensor(labels, dtype=torch.long), pad_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        rows = [self.token_ids[i] for i in indices]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.as_tensor(row)
            mask[i, : len(row)] = 1
        return {"inputs": {"input_ids": ids, "attention_mask": mask}, "labels": self.labels[index], "index": index}

    def fingerprint(self) -> str:
        """SHA-256 of the token ids, lengths and labels (the teacher-output cache checks it)."""
        lengths = torch.as_tensor([len(row) for row in self.token_ids], dtype=torch.long)
        flat = torch.as_tensor([t for row in self.token_ids for t in row], dtype=torch.long)
        return tensors_sha256([flat, lengths, self.labels])


class TextDataModule(SplitLoaders, L.LightningDataModule):
    """Text classification batches: ``inputs`` = ``{input_ids, attention_mask}``, ``labels``, ``index``.

    Exact-duplicate texts are dropped (first kept) before a stratified train/val/test split.

    Args:
        source: ``() -> (texts, labels, class_names)``, e.g. ``kd.data.text_sources.rotten_tomatoes``.
        tokenizer: the tokenizer's ``name_or_path`` (see ``kd.models.text``); normally the teacher's.
        max_length: longer texts are truncated to this many tokens.
        batch_size: training batch size.
        eval_batch_size: validation and test batch size.
        val_fraction: share of each class held out for model selection.
        test_fraction: share of each class held out for the final test.
        split_seed: seed of the split.
        train_subset: use only this many training texts, every class in its share (stratified, drawn
            with ``split_seed``), or None.
    """

    def __init__(
        self,
        source: Callable[[], TextSet],
        tokenizer: str,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        train_subset: int | None = None,
    ) -> None:
        super().__init__()
        if max_length < 2:
            raise ConfigError(f"data.module.max_length must be at least 2, got {max_length}")
        self.source, self.tokenizer_name, self.max_length = source, tokenizer, max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.train_subset = train_subset
        self.class_names: list[str] = []
        self.splits: dict[str, TokenizedTexts] = {}

    @property
    def tokenizer(self):
        return load_tokenizer(self.tokenizer_name)

    def example_inputs(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        """A short tokenised batch (reads no data)."""
        return dict(self.tokenizer(["an example"] * batch_size, return_tensors="pt", return_token_type_ids=False))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        texts, labels, self.class_names = self.source()
        empty = [i for i, text in enumerate(texts) if not str(text).strip()]
        if empty:
            raise ConfigError(
                f"data.module.source: text {empty[0]} (of {len(texts)}) is empty after cleaning ({len(empty)} such "
                "texts); remove those rows, or point data.module.source.text_column at the column holding the text"
            )
        first: dict[str, int] = {}
        for i, t in enumerate(texts):
            first.setdefault(t, i)
        keep = list(first.values())  # each text's first copy, in order
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        tokenizer = self.tokenizer
        for name, idx in stratified_split(labels, self.val_fraction, self.test_fraction, self.split_seed).items():
            if name == "train" and self.train_subset is not None:  # every class in its share
                idx = [idx[i] for i in stratified_subset([labels[i] for i in idx], self.train_subset, self.split_seed)]
            # only the texts a split keeps are tokenised (train_subset: a fraction of the work)
            ids = tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length)["input_ids"] if idx else []
            self.splits[name] = TokenizedTexts(ids, [labels[i] for i in idx], tokenizer.pad_token_id or 0)
