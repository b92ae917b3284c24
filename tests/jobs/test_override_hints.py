"""An override whose key the config lacks: Hydra refuses it, kd names the closest keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from kd.jobs.override_hints import override_hints
from tests.cli import TINY_CLI, run_cli


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["loss.temprature=2"], "no key 'loss.temprature'; did you mean loss.temperature?"),
        (["trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
        (["los=kd"], "no key 'los'; did you mean loss?"),
        (["studnet=resnet18"], "no key 'studnet'; did you mean student?"),  # a mistyped group name
        (["trainr.max_epochs=2"], "no key 'trainr.max_epochs'; did you mean trainer.max_epochs?"),  # a mistyped top-level key
        (["optim=adamw", "optim.lr=0.1"], "no key 'optim.lr'; did you mean optim.optimizer.lr?"),  # the group's own keys
        (["data.module.batchsize=3"], "did you mean data.module.batch_size or data.module.eval_batch_size?"),
        (["loss=kd,dkd", "loss.temprature=1,2"], "did you mean loss.temperature?"),  # a sweep: its first option
    ],
)
def test_a_misspelt_key_gets_the_closest_keys(argv: list[str], hint: str) -> None:
    (line,) = override_hints(argv)
    assert line.startswith("kd: the config has no key") and hint in line


def test_a_key_like_none_lists_the_keys_beside_it() -> None:
    (line,) = override_hints(["loss=dkd", "loss.alpah=0.3"])  # dkd weighs its terms by beta, not alpha
    assert "no key 'loss.alpah'; keys under 'loss':" in line and "beta" in line and "temperature" in line
    assert line.endswith("(`python -m kd.run loss=dkd --cfg job` prints them all)")
    (line,) = override_hints(["zzz.qqq=1"])
    assert "top-level keys:" in line and "seed" in line and "teacher_outputs" in line
    (line,) = override_hints(["seed.value=1"])
    assert "no key 'seed.value'; 'seed' is a value (0), not a group of keys" in line


def test_a_key_whose_last_name_matches_none_is_not_offered_a_far_one() -> None:
    """``loss.terms.feature`` is close to ``loss.temperature`` as a whole, not as a key: the feature
    loss's keys are listed instead."""
    (line,) = override_hints(["loss=feature", "loss.temperature=2"])
    assert "did you mean" not in line and "no key 'loss.temperature'; keys under 'loss':" in line, line
    assert "student_layer" in line and "terms" in line


def test_keys_that_exist_adds_and_hydras_own_keys_get_no_hint() -> None:
    assert override_hints(["loss=dkd", "loss.beta=2", "+loss.new_key=1", "~logger", "hydra.run.dir=x", "-m"]) == []
    assert override_hints(["++trainer.max_steps=1", "++loss.temperature=2"]) == []  # added or set, whichever it is
    assert override_hints(["loss=nope", "loss.temprature=2"]) == []  # Hydra's message lists the loss options


def test_the_cli_prints_the_hint_after_hydras_message(tmp_path: Path) -> None:
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={tmp_path}", "loss.temprature=2")
    assert code == 1
    assert "Could not override 'loss.temprature'" in err  # Hydra's own message stays
    assert err.strip().endswith("kd: the config has no key 'loss.temprature'; did you mean loss.temperature?")
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(("argv", "hint"), [
    (["+experiment=lm_smollm2"], "experiment is a group of train.yaml's defaults, so an option replaces its choice; "
                                 "write experiment=lm_smollm2, without '+'"),
    (["+loss=ce", "seed=1"], "write loss=ce, without '+'"),
])
def test_adding_an_option_of_a_group_the_defaults_choose_gets_the_override_without_plus(argv: list[str], hint: str) -> None:
    (line,) = override_hints(argv)
    assert line.startswith("kd: ") and hint in line
    assert override_hints(["+sweep=seeds"]) == []  # a group the defaults list has no place for is added with +


def test_the_cli_prints_the_hint_for_a_group_added_with_plus(tmp_path: Path) -> None:
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={tmp_path}", "+loss=ce")
    assert code == 1 and "Multiple values for loss" in err  # Hydra's own message stays
    assert err.strip().endswith("write loss=ce, without '+'")
