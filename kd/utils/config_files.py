"""Where kd's config tree is: the one place that finds it (``kd.run``, the start-up checks, benchmarks).

The YAML files ship inside the package as ``kd.conf``: pyproject.toml maps that package to the
repository's top-level ``conf/`` folder, so a wheel holds them under ``kd/conf/`` and the editable
install of ``make setup`` serves them from ``conf/`` itself. Hydra reads them as ``pkg://kd.conf``
in both cases, whatever the working directory. A checkout imported without being installed (``kd``
found through ``PYTHONPATH`` or the working directory alone) has no ``kd.conf`` package; there the
repository's ``conf/`` folder is read directly.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

CONF_PACKAGE = "kd.conf"
CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"  # kd/utils/ -> the repository's conf/
VERSION_BASE = "1.3"


@cache
def packaged() -> bool:
    """Whether the config tree imports as the package ``kd.conf`` (a wheel, or the editable install)."""
    try:
        importlib.resources.files(CONF_PACKAGE)
    except ModuleNotFoundError:
        return False
    return True


def conf_root() -> Traversable:
    """The config tree: the files of ``kd.conf``, or the checkout's ``conf/`` folder."""
    return importlib.resources.files(CONF_PACKAGE) if packaged() else CHECKOUT_CONF


def hydra_config_path() -> str:
    """``config_path`` for ``hydra.main``: ``pkg://kd.conf``, or the checkout's ``conf/`` (an absolute path)."""
    return f"pkg://{CONF_PACKAGE}" if packaged() else str(CHECKOUT_CONF)


@contextlib.contextmanager
def initialize_conf() -> Iterator[None]:
    """Hydra initialised on the config tree, for ``hydra.compose(config_name="train", overrides=...)``."""
    from hydra import initialize_config_dir, initialize_config_module

    if packaged():
        with initialize_config_module(config_module=CONF_PACKAGE, version_base=VERSION_BASE):
            yield
    else:
        with initialize_config_dir(config_dir=str(CHECKOUT_CONF), version_base=VERSION_BASE):
            yield
