"""English text for language-model distillation, as a list of documents (one loader per format).

The defaults read what Debian packages install: the Python 3.11 documentation sources
(``python3.11-doc``, 497 reST files, 12 MB) and fortune cookies (``fortunes``, records split by ``%``).
Any folder of text files is a source too (:func:`text_files`).
"""

from __future__ import annotations

from pathlib import Path

from kd.data.locations import data_path
from kd.errors import ConfigError

PYTHON_DOCS = "/usr/share/doc/python3.11/html/_sources"
FORTUNES = "/usr/share/games/fortunes"


def text_files(root: str | Path, pattern: str = "**/*.txt", encoding: str = "utf-8", package: str = "") -> list[str]:
    """Each file under ``root`` matching ``pattern`` as one document (sorted by path; empty files skipped).

    Args:
        root: the folder.
        pattern: a glob relative to ``root``.
        encoding: the files' text encoding.
        package: the Debian package that installs them (named in the error when they are missing).
    """
    root = data_path(root, "data.module.source.root")
    files = sorted(p for p in root.glob(pattern) if p.is_file()) if root.is_dir() else []
    if not files:
        hint = f" Install them with `sudo apt-get install {package}` (or `make data`)." if package else ""
        raise ConfigError(f"no files matching {pattern!r} in {root} (config key data.module.source.root).{hint}")
    documents = []
    for path in files:
        try:
            text = path.read_text(encoding=encoding).strip()
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path} is not valid {encoding} text (config key data.module.source.encoding={encoding})"
            ) from None
        if text:
            documents.append(text)
    return documents


def python_docs(root: str | None = None) -> list[str]:
    """The reST sources of the Python 3.11 documentation, one document per page."""
    return text_files(root or PYTHON_DOCS, "**/*.rst.txt", package="python3.11-doc")


def fortunes(root: str | None = None, limit_per_file: int | None = None) -> list[str]:
    """Fortune cookies (each ``%``-separated record a document) from the ``fortunes`` package's files."""
    folder = data_path(root or FORTUNES, "data.module.source.root")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.suffix) if folder.is_dir() else []
    if not files:
        raise ConfigError(
            f"no fortune files in {folder} (config key data.module.source.root). Install them with "
            "`sudo apt-get install fortunes` (or `make data`)."
        )
    documents = []
    for path in files:
        records = [r.strip() for r in path.read_text(encoding="utf-8", errors="replace").split("\n%\n")]
        documents += [r for r in records if r][:limit_per_file]
    return documents
