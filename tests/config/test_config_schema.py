"""Every config value is typed and checked before a run starts (issue 19).

A bad value stops ``python -m kd.run`` before Hydra writes anything: exit status 2, one paragraph
that names the key as typed, no traceback, and no file anywhere (the run folder is never created).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import open_dict

from kd.errors import ConfigError
from kd.jobs.validate import check_config, problems, uncovered, unread
from tests.cli import TINY_CLI, run_cli

# (overrides, the key the message must name, a phrase it must contain)
BAD_VALUES = [
    # types
    (["loss.temperature=abc"], "loss.temperature", "must be a number > 0"),
    (["seed=x"], "seed", "must be an integer"),
    (["trainer.max_epochs=1.5"], "trainer.max_epochs", "must be an integer >= 1"),
    (["channels_last=maybe"], "channels_last", "must be true or false"),
    (["data.module.augment=3"], "data.module.augment", "must be a list of mappings, each a _target_"),
    (["data.module.augment=[{_target_:kd.data.augment.HorizontalFlip,p:2}]"], "data.module.augment",
     "item 0: HorizontalFlip: p=2: must be a number between 0 and 1"),
    (["data=fashion_mnist", "data.module.augment.0._target_=kd.data.augment.Rotate"], "data.module.augment",
     "cannot import it"),
    (["teacher_outputs.features=stage3"], "teacher_outputs.features", "must be a list"),
    (["student.net.channels=[4,4,8,x]"], "student.net.channels", "item 3 ('x')"),
    (["optim.optimizer.nesterov=yes"], "optim.optimizer.nesterov", "must be true or false"),
    (["loss.terms.kd.fn.temperature=abc"], "loss.terms.kd.fn.temperature", "must be float"),
    # ranges (derived values are checked at their source: loss.alpha, not loss.terms.ce.weight)
    (["loss.temperature=0"], "loss.temperature", "> 0"),
    (["loss.temperature=-2"], "loss.temperature", "> 0"),
    (["loss.alpha=1.5"], "loss.alpha", ">= 0 and <= 1"),
    (["loss.alpha=-0.1"], "loss.alpha", "CE gets 1 - alpha"),
    (["loss=dkd", "loss.beta=-1"], "loss.beta", ">= 0"),
    (["loss=jsd", "loss.jsd_beta=2"], "loss.jsd_beta", "<= 1"),
    (["loss=jsd", "loss.jsd_beta=-0.1"], "loss.jsd_beta", ">= 0"),
    (["loss=skew_rkl", "loss.skew=1"], "loss.skew", "< 1"),
    (["loss=dkd", "loss.temperature=0"], "loss.temperature", "> 0"),
    (["loss=kd", "loss.std_correction=2"], "loss.std_correction", "<= 1"),
    (["loss=mlkd", "loss.temperatures=[4,0]"], "loss.temperatures", "item 1"),
    (["loss.terms.kd.weight=inf"], "loss.terms.kd.weight", "not inf"),
    (["loss.terms.kd.weight=x"], "loss.terms.kd.weight", "must be a number"),
    (["teacher_outputs.cache=sometimes"], "teacher_outputs.cache", "one of auto, true, false"),
    (["teacher_outputs.dtype=int8"], "teacher_outputs.dtype", "one of float16, bfloat16, float32"),
    (["loss=crd", "loss.nce_m=1"], "loss.nce_m", "< 1"),
    (["loss.terms.kd.weight=-0.5"], "loss.terms.kd.weight", ">= 0"),
    (["optim.optimizer.lr=-1"], "optim.optimizer.lr", "> 0"),
    (["optim.optimizer.momentum=1.0"], "optim.optimizer.momentum", "< 1"),
    (["optim.optimizer.weight_decay=-0.1"], "optim.optimizer.weight_decay", ">= 0"),
    (["optim.scheduler.warmup_fraction=1.5"], "optim.scheduler.warmup_fraction", "< 1"),
    (["threads=0"], "threads", "an integer >= 1, or null"),
    (["trainer.max_epochs=0"], "trainer.max_epochs", ">= 1"),
    (["trainer.log_every_n_steps=-1"], "trainer.log_every_n_steps", ">= 0"),
    (["checkpoint_every_n_steps=-5"], "checkpoint_every_n_steps", ">= 0"),
    (["teacher.epochs=-1"], "teacher.epochs", ">= 0"),
    (["teacher_outputs.top_k=0"], "teacher_outputs.top_k", ">= 1"),
    (["data.num_classes=1"], "data.num_classes", ">= 2"),
    # empty or zero sizes
    (["data.module.batch_size=0"], "data.module.batch_size", ">= 1"),
    (["data.module.eval_batch_size=-5"], "data.module.eval_batch_size", ">= 1"),
    (["data.module.source.train_size=0"], "data.module.source.train_size", ">= 1"),
    (["data.module.source.input_shape=[1,0,28]"], "data.module.source.input_shape", "item 1"),
    (["data=fashion_mnist", "data.module.source.train_subset=0"], "data.module.source.train_subset", ">= 1, or null"),
    (["latency_batch_size=0"], "latency_batch_size", ">= 1"),
    # unknown options of a key
    (["teacher_outputs.cache=sometimes"], "teacher_outputs.cache", "choose one of auto, true, false"),
    (["teacher_outputs.dtype=int8"], "teacher_outputs.dtype", "float16, bfloat16, float32"),
    (["trainer.precision=bf17"], "trainer.precision", "bf16-mixed"),
    (["progress_bar=maybe"], "progress_bar", "auto, true, false"),
    (["loss=cc", "loss.kernel=rbf"], "loss.kernel", "gaussian, bilinear"),
    (["data.modality=audio"], "data.modality", "image, text"),
    (["student.net._target_=timm.no_such_model"], "student.net._target_", "cannot import"),
]


@pytest.mark.parametrize(("overrides", "key", "phrase"), BAD_VALUES, ids=[" ".join(o) for o, _, _ in BAD_VALUES])
def test_bad_value_is_refused_before_anything_is_written(tmp_path: Path, overrides, key: str, phrase: str) -> None:
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", *overrides)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and err.startswith("error: "), err
    assert f" {key}=" in err and phrase in err, err
    assert list(tmp_path.iterdir()) == []  # no run folder, no teacher, no cache


def test_wrong_file_kinds_are_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    for ckpt, phrase in ((notes, "is not a PyTorch checkpoint"), (tmp_path / "nowhere.ckpt", "must be an existing file")):
        code, err = run_cli(*TINY_CLI, "loss=kd", f"teacher.ckpt={ckpt}", f"hydra.run.dir={tmp_path / 'run'}",
                            f"paths.log_dir={tmp_path / 'outputs'}")
        assert code == 2 and f"teacher.ckpt='{ckpt}': {phrase}" in err and "Traceback" not in err, err
        assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


def test_the_key_the_user_typed_comes_first(make_cfg) -> None:
    cfg = make_cfg("loss.alpha=1.5", "seed=-1")
    with pytest.raises(ConfigError, match=r"^2 invalid config values: seed=-1: .*; loss.alpha=1.5: "):
        check_config(cfg, ["seed=-1", "loss.alpha=1.5"])
    assert set(problems(cfg)) == {"seed", "loss.alpha"}  # not loss.terms.ce.weight = 1 - alpha


def test_a_key_without_a_type_is_reported(make_cfg) -> None:
    """Every option's keys are typed (tests/test_configs.py checks each); a new untyped key is named."""
    cfg = make_cfg()
    assert uncovered(cfg) == []
    with open_dict(cfg):
        cfg.loss.new_knob = 3
    assert uncovered(cfg) == ["loss.new_knob"]


def test_data_models_and_loss_of_different_kinds_are_refused_before_the_values_they_leave_unset(make_cfg) -> None:
    cfg = make_cfg("data=rotten_tomatoes", "loss=ce")  # image student; data.tokenizer (the teacher's) is null
    assert "data.tokenizer" in problems(cfg)
    with pytest.raises(ConfigError, match=r"^data=rotten_tomatoes is text data but student=tiny is a model for image"):
        check_config(cfg)
    with pytest.raises(ConfigError, match=r"^data.tokenizer is null: .* teacher=tiny has none. Pick a text teacher"):
        check_config(make_cfg("data=rotten_tomatoes", "loss=ce", "student=text_tiny"))
    with pytest.raises(ConfigError, match=r"^loss=.* works on image and text models .* data=lm_fortunes is lm data"):
        check_config(make_cfg("data=lm_fortunes", "loss=kd", "student=llama_tiny", "teacher=llama_tiny"))


def test_an_added_key_that_nothing_reads_is_refused_with_the_closest_keys(make_cfg) -> None:
    """Hydra accepts any key added with ``+``; one that no rule covers, no ``_target_`` takes and no value
    refers to would be ignored (or fail when its object is built), so it is refused by name."""
    cases = {
        "+sede=3": ("sede", "kd reads no such key; did you mean seed?"),
        "+loss.temprature=2": ("loss.temprature", "did you mean loss.temperature?"),
        "+trainer.max_epoch=2": ("trainer.max_epoch", "Trainer takes no argument 'max_epoch'; did you mean max_epochs"),
        "+optim.optimizer.moment=0.5": ("optim.optimizer.moment", "SGD takes no argument 'moment'; did you mean momentum?"),
        # a key with a rule (AdamW's betas) that this optimiser does not take: its arguments are listed
        "+optim.optimizer.betas=[0.9,0.99]": ("optim.optimizer.betas", "SGD takes no argument 'betas'; it takes params, lr,"),
        # a mapping under an argument the target does not take: named by that argument
        "+optim.optimizer.extra.decay=0.5": ("optim.optimizer.extra", "SGD takes no argument 'extra'"),
    }
    for override, (key, why) in cases.items():
        found = unread(make_cfg("loss=kd", override))
        assert list(found) == [key] and why in found[key][1], (override, found)
        with pytest.raises(ConfigError, match=rf"^config key that nothing reads: {key}="):
            check_config(make_cfg("loss=kd", override), [override])
    with pytest.raises(ConfigError, match=r"^2 config keys that nothing reads: sede=3: .*; loss.temprature=2: "):
        check_config(make_cfg("loss=kd", "+sede=3", "+loss.temprature=2"), ["+sede=3", "+loss.temprature=2"])


def test_an_added_key_that_is_read_is_accepted(make_cfg) -> None:
    read = [
        ["+trainer.max_steps=3"],  # an argument the target takes (typed by its annotation)
        ["student=resnet10_w8", "+student.net.drop_rate=0.1"],  # timm's create_model passes **kwargs to the model
        ["+lr=0.05", "optim.optimizer.lr=${lr}"],  # a helper key that another value refers to
        ["+seeds.base=4", "seed=${seeds.base}"],
    ]
    for overrides in read:
        cfg = make_cfg("loss=kd", *overrides)
        assert unread(cfg) == {}, overrides
        check_config(cfg, overrides)
    alone = unread(make_cfg("loss=kd", "+lr=0.05"))  # the same helper key that nothing refers to
    assert list(alone) == ["lr"] and alone["lr"][1].startswith("kd reads no such key (`python -m kd.run --help`")


def test_csv_in_another_encoding_needs_the_encoding_option(tmp_path: Path) -> None:
    from kd.data.text_sources import csv_texts

    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\nsmart café scene,good\ndull,bad\n".encode("cp1252"))
    with pytest.raises(ConfigError, match=r"not valid utf-8 text .*data.module.source.encoding=utf-8"):
        csv_texts(path, "text", "label")
    texts, labels, names = csv_texts(path, "text", "label", encoding="cp1252")
    assert texts == ["smart café scene", "dull"] and labels == [1, 0] and names == ["bad", "good"]
    with pytest.raises(ConfigError, match="data.module.source.encoding='klingon' is not a known text encoding"):
        csv_texts(path, "text", "label", encoding="klingon")


def test_byte_order_marks_are_read_and_failures_suggest_an_encoding_that_fits(tmp_path: Path, capsys) -> None:
    from kd.data.text_sources import csv_texts

    rows = "text,label\nsmart café scene,good\ndull,bad\n"
    for codec, bom in (("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-32-be", b"\x00\x00\xfe\xff")):
        (tmp_path / "bom.csv").write_bytes(bom + rows.encode(codec))
        assert csv_texts(tmp_path / "bom.csv", "text", "label")[0] == ["smart café scene", "dull"], codec
    # 0x81 is no cp1252 character: these bytes are neither utf-8 nor cp1252, and latin-1 reads them
    (tmp_path / "odd.csv").write_bytes(b"text,label\ncaf\xe9 \x81,good\ndull,bad\n")
    with pytest.raises(ConfigError, match=r"not valid utf-8 text .*The bytes decode as latin-1: give data.module.source.encoding=latin-1"):
        csv_texts(tmp_path / "odd.csv", "text", "label")
    (tmp_path / "win.csv").write_bytes(rows.encode("cp1252"))
    with pytest.raises(ConfigError, match=r"The bytes decode as cp1252"):
        csv_texts(tmp_path / "win.csv", "text", "label")
    texts, _, _ = csv_texts(tmp_path / "odd.csv", "text", "label", encoding_errors="replace")
    assert texts[0] == "caf\ufffd \ufffd" and "replaced 2 characters that are not valid utf-8" in capsys.readouterr().out
