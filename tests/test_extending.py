"""docs/extending.md, followed to the letter (issue 36): its loss, its image data set from NumPy arrays and its
launcher are taken from the page's own code blocks and run on tiny jobs.

A code block belongs to a file when its first line is ``# <path>`` (``# kd/losses/logit_mse.py``). The files
are written under a temporary folder, never into the repository: Python modules are put first on their
package's ``__path__`` (so ``_target_: kd.losses.logit_mse.LogitMSE`` imports the documented module, as it
would from ``kd/losses/``), configs are found through ``hydra.searchpath`` (a folder laid out as ``conf/``: its
``loss/``, ``data/`` and ``sweep/`` join the groups of the same names). Renaming or breaking a file on the page
breaks these tests.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

import tests.launch.test_sweep_files as sweep_files
from kd.errors import ConfigError
from kd.job import train
from kd.jobs.validate import problems, uncovered
from kd.model_outputs import ModelOutputs
from kd.training import build_loss
from tests.cli import TINY_CLI, run_cli
from tests.conftest import CONF_DIR, TINY, compose_config
from tests.losses.test_loss_conventions import distillation_term, interpolations_of
from tests.test_configs import check_instantiates

REPO = CONF_DIR.parent
PAGE = (REPO / "docs" / "extending.md").read_text()
# `# kd/losses/logit_mse.py` (not `# in kd/...`); below `# @package`, which Hydra reads only on the first lines
FILE_MARK = re.compile(r"(?:# @package \S+\n)?# ([\w./-]+\.(?:py|yaml))\n")


def doc_files(heading: str) -> dict[str, str]:
    """The files of the page's section ``## <heading>``: repository path -> the code block."""
    sections = re.split(r"^## ", PAGE, flags=re.M)
    (section,) = [s for s in sections if s.startswith(heading + "\n")]
    files = {}
    for block in re.findall(r"^```\w*\n(.*?)^```$", section, flags=re.S | re.M):
        if mark := FILE_MARK.match(block):
            files[mark.group(1)] = block
    return files


def one(files: dict[str, str], pattern: str) -> str:
    """The one path of ``files`` that matches ``pattern`` (``conf/loss/*.yaml``)."""
    (path,) = [p for p in files if Path(p).match(pattern)]
    return path


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, Path]]]:
    """``install(files)`` writes the files under ``tmp_path/ext`` and makes kd find them."""
    root, modules = tmp_path / "ext", []

    def put(files: dict[str, str]) -> dict[str, Path]:
        written = {}
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written[rel] = path
            if path.suffix == ".py":  # kd/losses/x.py: first on kd.losses.__path__
                package = importlib.import_module(".".join(Path(rel).parent.parts))
                monkeypatch.setattr(package, "__path__", [str(path.parent), *package.__path__])
                modules.append(".".join(Path(rel).with_suffix("").parts))
                sys.modules.pop(modules[-1], None)
        importlib.invalidate_caches()
        return written

    yield put
    for name in modules:
        sys.modules.pop(name, None)


def search_path(tmp_path: Path) -> str:
    """The override that puts the installed conf/ (its groups: loss/, data/, sweep/) after kd's own."""
    folders = [f for f in (tmp_path / "ext" / "conf",) if f.is_dir()]
    return "hydra.searchpath=[" + ",".join(f"'file://{f}'" for f in folders) + "]"


# --- A loss -------------------------------------------------------------------------------------------

LOSS = doc_files("A loss")
LOSS_YAML = one(LOSS, "conf/loss/*.yaml")
LOSS_NAME = Path(LOSS_YAML).stem


def test_the_page_has_the_files_it_promises() -> None:
    assert set(LOSS) == {one(LOSS, "kd/losses/*.py"), LOSS_YAML}
    assert len(doc_files("An image data set")) == 2 and len(doc_files("A launcher")) == 1


def test_the_loss_config_follows_the_weight_convention() -> None:
    """What tests/losses/test_loss_conventions.py checks of every file in conf/loss/."""
    raw = yaml.safe_load(LOSS[LOSS_YAML])
    term = distillation_term(raw)
    assert "weight" not in raw and "alpha" not in raw and "beta" in raw
    assert float(raw["terms"]["ce"]["weight"]) == 1.0 and raw["terms"][term]["weight"] == "${loss.beta}"
    assert interpolations_of(raw, "beta") == [f"terms.{term}.weight"]
    lines = LOSS[LOSS_YAML].splitlines()
    comments = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]   # the header block
    header = re.sub(r"\s+", " ", " ".join(line.lstrip("#").strip() for line in comments))
    assert f"total = ce + beta * {term}" in header and "Weight convention: beta weighs" in header


def test_the_loss_composes_and_computes_its_formula(install, tmp_path: Path) -> None:
    install(LOSS)
    cfg = compose_config([*TINY, search_path(tmp_path), f"loss={LOSS_NAME}", "loss.beta=0.5"], tmp_path)
    assert uncovered(cfg) == [] and problems(cfg) == {}   # tests/config/test_config_schema.py's checks
    check_instantiates("loss", cfg)                        # tests/test_configs.py's check
    loss = build_loss(cfg.loss)
    assert loss.weights == {"ce": 1.0, LOSS_NAME: 0.5} and loss.needs_teacher
    term = loss.fns[LOSS_NAME]
    assert term.reads_teacher_features is False
    student, teacher = ModelOutputs(torch.zeros(4, 10)), ModelOutputs(torch.full((4, 10), 2.0))
    assert term(student, teacher, torch.zeros(4, dtype=torch.long)).item() == pytest.approx(4.0)  # mean((0 - 2)^2)


def test_the_loss_trains_a_tiny_student(install, tmp_path: Path) -> None:
    install(LOSS)
    cfg = compose_config([*TINY, search_path(tmp_path), f"loss={LOSS_NAME}", "loss.beta=0.5"], tmp_path)
    metrics = train(cfg)
    assert metrics["job_type"] == "distill" and Path(metrics["teacher_ckpt"]).is_file()
    value = metrics[f"train/loss/{LOSS_NAME}"]
    assert math.isfinite(value) and value > 0
    # the logged total is the last step's CE plus beta times the new term
    assert metrics["train/loss"] == pytest.approx(metrics["train/loss/ce"] + 0.5 * value, rel=1e-5)
    assert 0.0 <= metrics["test/acc"] <= 1.0 and math.isfinite(metrics["test/kl"])


# --- An image data set from NumPy arrays --------------------------------------------------------------

DATA = doc_files("An image data set")
DATA_YAML = one(DATA, "conf/data/*.yaml")
DATA_NAME = Path(DATA_YAML).stem
SHAPE = tuple(yaml.safe_load(DATA[DATA_YAML])["module"]["source"]["input_shape"][1:])  # (H, W) on the page


def write_npz(path: Path, channels: int, size: tuple[int, int], n_train: int = 100, n_test: int = 30) -> dict:
    rng = np.random.default_rng(0)
    pixels = size if channels == 1 else (*size, channels)   # (N, H, W) or (N, H, W, C) uint8, as the page reads
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, *pixels), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n)
    np.savez(path, **arrays)
    return arrays


def data_cfg(tmp_path: Path, *overrides: str, base: list[str] = TINY):
    return compose_config([*base, search_path(tmp_path), f"data={DATA_NAME}", "data.module.source.val_size=20",
                           *overrides], tmp_path)


@pytest.mark.parametrize(("channels", "size"), [(3, SHAPE), (1, (28, 28))], ids=["page", "gray28"])
def test_the_array_source_serves_the_written_arrays(install, tmp_path: Path, channels: int, size: tuple) -> None:
    install(DATA)
    arrays = write_npz(tmp_path / "images.npz", channels, size)
    shape = [] if size == SHAPE else [f"data.in_chans={channels}", f"data.module.source.input_shape=[{channels},28,28]"]
    cfg = data_cfg(tmp_path, f"data.module.source.path={tmp_path / 'images.npz'}", *shape)
    assert uncovered(cfg) == [] and problems(cfg) == {}
    if size == (28, 28):
        check_instantiates("data", cfg)   # tests/test_configs.py's check (it expects 28 x 28 images)
    dm = instantiate(cfg.data.module)
    dm.prepare_data()
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 80, "val": 20, "test": 30}
    test = dm.splits["test"][list(range(30))]
    assert test["inputs"].shape == (30, channels, *size) and test["inputs"].dtype == torch.float32
    expected = torch.from_numpy(arrays["x_test"].astype(np.float32) / 255.0)
    expected = expected.unsqueeze(1) if channels == 1 else expected.permute(0, 3, 1, 2)
    torch.testing.assert_close(test["inputs"], (expected - 0.5) / 0.25)   # the page's default mean and std
    assert test["labels"].tolist() == arrays["y_test"].tolist()
    train_labels = torch.cat([dm.splits[s].labels for s in ("train", "val")])
    assert sorted(train_labels.tolist()) == sorted(arrays["y_train"].tolist())   # a split, nothing lost
    assert dm.example_inputs(2).shape == (2, channels, *size)


def test_the_array_source_reads_class_folders_and_refuses_bad_input(install, tmp_path: Path) -> None:
    from PIL import Image

    install(DATA)
    arrays = write_npz(tmp_path / "images.npz", 1, (28, 28), n_train=30, n_test=10)
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(arrays[f"x_{split}"], arrays[f"y_{split}"], strict=True)):
            folder = tmp_path / "folders" / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    source = "data.module.source"
    cfg = data_cfg(tmp_path, f"{source}.path=null", f"+{source}.root={tmp_path / 'folders'}", "data.in_chans=1",
                   f"{source}.input_shape=[1,28,28]", f"{source}.val_size=5")
    splits = instantiate(cfg.data.module.source).load()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [25, 5, 10]
    classes = sorted(f"class{y}" for y in set(arrays["y_test"].tolist()))   # labels: sorted folder names
    assert splits["test"].labels.tolist() == sorted(classes.index(f"class{y}") for y in arrays["y_test"].tolist())
    source_class = get_class(cfg.data.module.source._target_)
    with pytest.raises(ConfigError, match="set one of data.module.source.path"):
        source_class([1, 28, 28], path=str(tmp_path / "images.npz"), root=str(tmp_path / "folders"))
    with pytest.raises(ConfigError, match="input_shape says"):
        source_class([1, 32, 32], path=str(tmp_path / "images.npz"), val_size=5).load()


def test_a_run_trains_on_the_numpy_images(install, tmp_path: Path) -> None:
    install(DATA)
    write_npz(tmp_path / "images.npz", 3, SHAPE)
    cfg = data_cfg(tmp_path, f"data.module.source.path={tmp_path / 'images.npz'}", "loss=ce",
                   "data.module.batch_size=32")
    metrics = train(cfg)
    assert metrics["job_type"] == "baseline" and metrics["epochs"] == 1
    assert all(math.isfinite(metrics[k]) for k in ("train/loss", "val/acc", "test/acc", "test/ece"))
    assert round(metrics["test/acc"] * 30, 4).is_integer()   # scored on the 30 written test images
    resolved = (Path(cfg.paths.output_dir) / "config_resolved.yaml").read_text()
    assert str(tmp_path / "images.npz") in resolved and f"name: {DATA_NAME}" in resolved


# --- A launcher ---------------------------------------------------------------------------------------

LAUNCHER = doc_files("A launcher")
LAUNCHER_YAML = one(LAUNCHER, "conf/sweep/*.yaml")
LAUNCHER_NAME = Path(LAUNCHER_YAML).stem
PLACEHOLDER = re.compile(r"(override /hydra/launcher: )<[^>]+>")


def launcher_file(plugin: str, plugin_options: bool = True) -> dict[str, str]:
    """The page's launcher with the plugin's name filled in (and its own options left out)."""
    text, filled = PLACEHOLDER.subn(rf"\g<1>{plugin}", LAUNCHER[LAUNCHER_YAML])
    assert filled == 1, "the page's launcher names its plugin as `override /hydra/launcher: <...>`"
    if not plugin_options:
        text = re.sub(r"^  launcher:\n(    .*\n)+", "", text, flags=re.M)
    return {LAUNCHER_YAML: text}


def test_the_launcher_file_passes_the_sweep_file_check(install, tmp_path: Path) -> None:
    path = install(launcher_file("joblib"))[LAUNCHER_YAML]
    sweep_files.test_hydra_sweep_parameters_are_valid_overrides(path, tmp_path)   # what every conf/sweep file gets
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[search_path(tmp_path), f"+sweep={LAUNCHER_NAME}"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.mode == RunMode.MULTIRUN and cfg.threads == 1


def test_a_sweep_runs_the_new_loss_under_the_launcher_pattern(install, tmp_path: Path) -> None:
    """``+sweep=<name> loss=kd,<new loss>`` with Hydra's own (sequential) launcher: no plugin needed."""
    install({**LOSS, **launcher_file("basic", plugin_options=False)})
    sweep = tmp_path / "sweep"
    code, err = run_cli(*TINY_CLI, search_path(tmp_path), f"+sweep={LAUNCHER_NAME}", f"loss=kd,{LOSS_NAME}",
                        f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}")
    assert code == 0, err[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    metrics = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert "train/loss/kd" in metrics[0] and f"train/loss/{LOSS_NAME}" in metrics[1]
    assert metrics[0]["teacher_ckpt"] == metrics[1]["teacher_ckpt"]   # one teacher for the sweep
    assert all(OmegaConf.load(job / ".hydra" / "config.yaml").threads == 1 for job in jobs)   # the file's threads
    assert "BasicLauncher" in (sweep / "multirun.yaml").read_text()
