"""Comments in conf/ and sweeps/ point at doc pages that exist (``docs/<page>.md#<heading>``), not at README
sections: the README is a short front door, and the detail moved to docs/ (issue 36)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_docs_links import DOCS, ROOT, anchors

FILES = sorted([*(ROOT / "conf").rglob("*.yaml"), *(ROOT / "sweeps").rglob("*.yaml")])
REFERENCE = re.compile(r"docs/([\w/-]+\.md)(?:#([\w-]+))?")


def comments(path: Path) -> list[str]:
    """The YAML comments of ``path`` and the text of a ``--help`` footer (``conf/hydra/default.yaml``)."""
    text = path.read_text(encoding="utf-8")
    found = [line.split("#", 1)[1] for line in text.splitlines() if re.search(r"(^|\s)#", line)]
    footer = re.search(r"footer: \|-\n((?:    .*\n)+)", text)
    return found + ([footer.group(1)] if footer else [])


def problems(path: Path) -> list[str]:
    """README mentions and ``docs/`` references without their page or heading, in ``path``'s comments."""
    found = []
    for comment in comments(path):
        if "README" in comment:
            found.append(f"{path.name}: names the README ({comment.strip()})")
        for page, anchor in REFERENCE.findall(comment):
            if not (DOCS / page).is_file():
                found.append(f"{path.name}: docs/{page} (no such page)")
            elif anchor and anchor not in anchors(DOCS / page):
                found.append(f"{path.name}: docs/{page}#{anchor} (no such heading)")
    return found


def test_config_comments_point_at_doc_pages_that_exist() -> None:
    assert sum(len(REFERENCE.findall(c)) for p in FILES for c in comments(p)) >= 10
    assert [problem for path in FILES for problem in problems(path)] == []


def test_the_check_sees_a_moved_section(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1   # see README Speed\n# docs/speed.md#cores, docs/speed.md#no-such, docs/nope.md\n")
    assert problems(path) == ["x.yaml: names the README (see README Speed)",
                              "x.yaml: docs/speed.md#no-such (no such heading)", "x.yaml: docs/nope.md (no such page)"]
