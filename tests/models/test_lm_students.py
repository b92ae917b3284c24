"""Students cut from a pretrained causal LM (its embeddings, final norm and chosen layers), and the
language-model settings refused before any teacher or student trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kd.errors import ConfigError
from kd.job import train
from kd.models.lm import layers_to_keep, pretrained_causal_lm
from tests.lm.test_lm import LM_TINY, SMOLLM2

pytestmark = pytest.mark.usefixtures("module_pretrained_dir")


def test_the_layers_a_cut_model_keeps() -> None:
    assert layers_to_keep(30) is None
    assert layers_to_keep(30, num_layers=3) == [0, 1, 2]
    assert layers_to_keep(30, every_nth_layer=5) == [0, 5, 10, 15, 20, 25]
    assert layers_to_keep(30, every_nth_layer=2) == list(range(0, 30, 2))
    assert layers_to_keep(30, keep_layers=[0, 14, 29]) == [0, 14, 29]
    for kwargs, message in [
        ({"keep_layers": [0, 30]}, r"net.keep_layers=\[0, 30\]: \[30\] out of range; .* 30 layers, 0..29"),
        ({"keep_layers": [-1]}, r"\[-1\] out of range"),
        ({"keep_layers": []}, r"net.keep_layers is empty"),
        ({"keep_layers": [3, 1]}, r"each layer once, in increasing order"),
        ({"every_nth_layer": 31}, r"net.every_nth_layer=31: .* choose 1..30"),
        ({"num_layers": 0}, r"net.num_layers=0: .* choose 1..30"),
        ({"num_layers": 2, "keep_layers": [0]}, r"give only one of num_layers, every_nth_layer and keep_layers and set the others to null"),
    ]:
        with pytest.raises(ConfigError, match=message):
            layers_to_keep(30, **kwargs)


@pytest.mark.slow
def test_a_student_cut_from_smollm2_keeps_the_teachers_weights_and_generates_with_its_cache() -> None:
    teacher = pretrained_causal_lm(SMOLLM2)
    cut = pretrained_causal_lm(SMOLLM2, keep_layers=[0, 14, 29])
    assert len(cut.model.layers) == cut.config.num_hidden_layers == 3
    for new, old in enumerate([0, 14, 29]):
        for (name, a), b in zip(cut.model.layers[new].state_dict().items(), teacher.model.layers[old].state_dict().values(),
                                strict=True):
            assert torch.equal(a, b), (new, name)
        assert cut.model.layers[new].self_attn.layer_idx == new  # renumbered for the key-value cache
    assert torch.equal(cut.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert torch.equal(cut.model.norm.weight, teacher.model.norm.weight)
    assert cut.lm_head.weight.data_ptr() == cut.model.embed_tokens.weight.data_ptr()  # still tied
    per_layer = sum(p.numel() for p in teacher.model.layers[0].parameters())
    assert sum(p.numel() for p in cut.parameters()) == sum(p.numel() for p in teacher.parameters()) - 27 * per_layer
    ids = torch.tensor([[504, 5905, 10822, 1921]])
    with torch.no_grad():
        cached = cut.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
        uncached = cut.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                use_cache=False)
    assert torch.equal(cached, uncached)
    first = pretrained_causal_lm(SMOLLM2, num_layers=2)  # the first k: only those are loaded
    assert torch.equal(first.model.layers[1].mlp.up_proj.weight, teacher.model.layers[1].mlp.up_proj.weight)


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    ids = torch.tensor([[504, 5905, 10822, 1921, 48672, 17791]])
    grads = []
    for checkpointing in (False, True):
        model = pretrained_causal_lm(SMOLLM2, num_layers=2, gradient_checkpointing=checkpointing).train()
        assert model.is_activation_checkpointing == checkpointing
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append(model.model.layers[0].mlp.up_proj.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize(("overrides", "message"), [
    (["student.net.keep_layers=[0,40]"], r"student.net.keep_layers=\[0, 40\]: \[40\] out of range; .* 0..29 \(student=smollm2_cut\)"),
    (["student.net.every_nth_layer=3"], r"student.net: give only one of num_layers, every_nth_layer and keep_layers"),
    (["student.net.keep_layers=[]"], r"student.net.keep_layers is empty"),
    (["teacher_outputs.top_k=49152"], r"teacher_outputs.top_k=49152: give null or an int between 1 and 49151"),
    (["data.module.block_size=128", "data.module.source.limit_per_file=200", "student=llama_tiny",
      "student.net.max_position_embeddings=64"],
     r"data.module.block_size=128 is longer than the student.s context of 64 positions"),
    (["loss=fkl", "teacher_outputs.top_k=8", "+loss.terms.rkl={weight:0.5,fn:{_target_:kd.losses.divergences.ReverseKL,"
      "temperature:2.0}}"], r"teacher_outputs.top_k=8 caches the teacher at one temperature, but temperatures by term"),
])
@pytest.mark.slow
def test_bad_language_model_settings_are_refused_before_the_teacher_trains(make_cfg, overrides, message) -> None:
    """The teacher (llama_tiny) would be trained first: nothing may reach that stage."""
    cfg = make_cfg("student=smollm2_cut", "loss=fkl", "loss.temperature=1", *overrides, base=LM_TINY)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not list(Path(cfg.paths.teacher_weights_dir).glob("**/*.ckpt"))  # no teacher was trained


def test_a_student_starts_from_an_earlier_runs_checkpoint(make_cfg) -> None:
    """``student.init_from`` (GKD continuing from a supervised student): with a learning rate of 1e-30 (no change in float32) the
    second run tests exactly the first run's best student."""
    first = train(make_cfg("loss=ce", base=LM_TINY))
    frozen = train(make_cfg("loss=ce", f"+student.init_from={first['best_checkpoint']}", "optim=adamw",
                            "optim.optimizer.lr=1e-30", base=LM_TINY))
    assert frozen["test/ppl"] == pytest.approx(first["test/ppl"], rel=1e-6)
    fresh = train(make_cfg("loss=ce", "optim=adamw", "optim.optimizer.lr=1e-30", base=LM_TINY))
    assert fresh["test/ppl"] != pytest.approx(first["test/ppl"], rel=1e-3)
    with pytest.raises(ConfigError, match=r"student.init_from"):
        train(make_cfg("loss=ce", "+student.init_from=/nonexistent.ckpt", base=LM_TINY))
    wider = make_cfg("loss=fkl", f"+student.init_from={first['best_checkpoint']}", "student.net.hidden_size=32",
                     base=LM_TINY)
    with pytest.raises(ConfigError, match=r"student.init_from=.* does not fit student=llama_tiny"):
        train(wider)  # refused at start-up: the teacher (llama_tiny) is not trained first
    assert not list(Path(wider.paths.teacher_weights_dir).glob("**/*.ckpt"))


def test_load_weights_takes_a_kd_checkpoints_student_and_names_the_key(tmp_path: Path) -> None:
    from torch import nn

    from kd.models.checkpoints import load_weights

    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.save({"state_dict": {f"student.{k}": v for k, v in source.state_dict().items()} | {"loss.x": torch.ones(1)}},
               tmp_path / "run.ckpt")
    load_weights(target, tmp_path / "run.ckpt", "student.init_from", "student=tiny")
    assert torch.equal(target.weight, source.weight)
    with pytest.raises(ConfigError, match=r"student.init_from=.*run.ckpt does not fit student=other"):
        load_weights(nn.Linear(4, 2), tmp_path / "run.ckpt", "student.init_from", "student=other")
