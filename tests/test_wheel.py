"""kd installed from a wheel, outside any checkout: the config tree ships inside the package as ``kd.conf``
(pyproject.toml maps it to the top-level ``conf/``) and Hydra finds it as ``pkg://kd.conf`` from any folder;
``kd/utils/config_files.py`` is the one place that finds it (issue 36).

The wheel is built from a copy of the files it is made of (pyproject.toml, README.md, kd/, conf/), so that
setuptools' ``build/`` and ``kd.egg-info/`` land in a temporary folder and not in the working tree.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose
from setuptools.config.pyprojecttoml import read_configuration

from kd.utils import config_files
from tests.conftest import CONF_DIR

REPO = CONF_DIR.parent
PYPROJECT = read_configuration(REPO / "pyproject.toml")["tool"]["setuptools"]
TINY = ["data=synthetic", "teacher=tiny", "student=tiny", "trainer=smoke", "~logger", "threads=1", "progress_bar=false"]


def test_the_package_list_names_every_kd_package_and_the_config_tree() -> None:
    """pyproject.toml lists its packages (a mapped kd.conf cannot come from `packages.find`): a new
    sub-package of kd/ must be added there, or the wheel would lack it."""
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "kd").rglob("__init__.py")}
    assert set(PYPROJECT["packages"]) == on_disk | {"kd.conf"}
    assert PYPROJECT["package-dir"] == {"kd.conf": "conf"}
    deepest = max(len(p.relative_to(CONF_DIR).parts) for p in CONF_DIR.rglob("*.yaml"))
    assert deepest <= 2 and PYPROJECT["package-data"]["kd.conf"] == ["*.yaml", "*/*.yaml"]   # every YAML file
    assert (CONF_DIR / "__init__.py").is_file()   # Hydra's pkg:// source needs it (and the editable finder)


def test_the_editable_install_serves_the_repository_conf() -> None:
    """``make setup``'s editable install maps kd.conf onto the checkout's conf/: edits show at once."""
    assert config_files.packaged() and config_files.hydra_config_path() == "pkg://kd.conf"
    assert Path(str(config_files.conf_root())).resolve() == CONF_DIR.resolve()
    with config_files.initialize_conf():
        cfg = compose(config_name="train", overrides=["+sweep=seeds"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params.seed == "0,1,2"


def test_a_checkout_that_is_not_installed_reads_conf_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_files, "CONF_PACKAGE", "kd.no_such_conf_package")
    config_files.packaged.cache_clear()
    try:
        assert not config_files.packaged()
        assert config_files.conf_root() == config_files.CHECKOUT_CONF == CONF_DIR
        assert config_files.hydra_config_path() == str(CONF_DIR)
        with config_files.initialize_conf():
            cfg = compose(config_name="train", overrides=["+sweep=seeds"], return_hydra_config=True)
        assert cfg.hydra.sweeper.params.seed == "0,1,2"
    finally:
        monkeypatch.undo()
        config_files.packaged.cache_clear()


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    for folder in ("kd", "conf"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("kd-*.whl")
    return wheel


def kd_python(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``cwd`` with the wheel's install first on the path."""
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=600,
                          check=False)


@pytest.mark.slow
def test_a_wheel_runs_a_job_from_another_folder(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged_yaml = {n.removeprefix("kd/conf/") for n in names if n.startswith("kd/conf/") and n.endswith(".yaml")}
    assert packaged_yaml == {p.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.rglob("*.yaml")}
    assert {"kd/conf/__init__.py", "kd/conf/train.yaml", "kd/conf/sweep/seeds.yaml"} <= names
    assert {p.relative_to(REPO).as_posix() for p in (REPO / "kd").rglob("*.py")} <= names

    site, elsewhere, outputs = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "outputs"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
                    "--no-index", "--target", str(site), str(wheel)], check=True, timeout=600)

    probe = kd_python(site, elsewhere, "-c", "import json, kd\n"
                      "from kd.utils.config_files import conf_root, hydra_config_path\n"
                      "from kd.jobs.modality import losses_for\n"
                      "print(json.dumps({'kd': kd.__file__, 'conf': str(conf_root()), 'path': hydra_config_path(),"
                      " 'lm': losses_for('lm')}))")
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(found["kd"]) == site / "kd" / "__init__.py"   # the wheel's kd, not the checkout's
    assert Path(found["conf"]) == site / "kd" / "conf" and found["path"] == "pkg://kd.conf"
    assert "fkl" in found["lm"] and "kd" not in found["lm"]    # conf/loss/*.yaml read from the package

    run = kd_python(site, elsewhere, "-m", "kd.run", *TINY, f"paths.log_dir={outputs}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    (metrics_file,) = outputs.glob("runs/*/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert "test/acc" in tests and all(isinstance(v, float) and math.isfinite(v) for v in tests.values()), tests
    assert list(elsewhere.iterdir()) == []   # everything went under paths.log_dir

    sweep = kd_python(site, elsewhere, "-m", "kd.run", "+sweep=seeds", "--cfg", "hydra", "-p", "hydra.sweeper.params")
    assert sweep.returncode == 0 and "seed: 0,1,2" in sweep.stdout, sweep.stderr[-3000:]
    typo = kd_python(site, elsewhere, "-m", "kd.run", "loss.temprature=2")   # the hint composes conf/ again
    assert typo.returncode == 1 and "did you mean loss.temperature?" in typo.stderr, typo.stderr[-3000:]
