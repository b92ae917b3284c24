"""The README is a short front door, and every relative link in it and in docs/ resolves.

``make docs`` (``mkdocs build --strict``) checks the links between the doc pages as well; this test also
covers README.md, which lies outside docs/, and runs with the rest of the suite, without MkDocs.
Anchors are checked against the target's headings, slugged as MkDocs does (Python-Markdown's ``toc``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml

from tests.paths import REPO

ROOT = REPO
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 250
CI_TEST_LINE = "make test   # venv + deps + data + the test suite (what CI runs)"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slugify(heading: str) -> str:
    """A heading's anchor as MkDocs makes it: markup dropped, ASCII, lowercase, runs of spaces and
    hyphens as one hyphen, other punctuation removed (``markdown.extensions.toc.slugify``)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (a repeated heading gets ``_1``, ``_2``, ... as in MkDocs)."""
    found: set[str] = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        title = match.group(2)
        if explicit := re.search(r"\{\s*#([\w-]+)[^}]*\}\s*$", title):  # attr_list: ## Title {#id}
            found.add(explicit.group(1))
            continue
        slug, n = slugify(title), 1
        unique = slug
        while unique in found:
            unique, n = f"{slug}_{n}", n + 1
        found.add(unique)
    return found


def links(path: Path) -> list[str]:
    """The link and image targets of a markdown file, outside code blocks and code spans."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return targets


def broken_links(path: Path) -> list[str]:
    """``"<file>: <target> (<why>)"`` for every relative link of ``path`` that does not resolve."""
    problems = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.is_file():
            problems.append(f"{path.name}: {target} (no file {destination})")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{path.name}: {target} (no heading with anchor #{anchor} in {destination.name})")
    return problems


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_readme_is_a_short_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert CI_TEST_LINE in lines  # CI runs the README's test command (.ci/run)


def test_every_relative_link_resolves() -> None:
    problems = [problem for path in markdown_files() for problem in broken_links(path)]
    assert problems == []


def test_the_checker_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.md").write_text(
        "# Page\n\n## Data-parallel training: `trainer=ddp`\n\n## Weights & Biases\n\n## Notes\n\n## Notes\n"
        "```\n## Not a heading\n```\n"
    )
    (tmp_path / "plot.png").write_bytes(b"")
    (tmp_path / "index.md").write_text(
        "# Index\n\n## Here\n\n"
        "[ok](sub/page.md) [ok](sub/page.md#data-parallel-training-trainerddp) [ok](sub/page.md#weights-biases)\n"
        "[ok](sub/page.md#notes_1) [ok](#here) ![ok](plot.png \"a plot\") [web](https://example.org/x#y)\n"
        "`[in code](nowhere.md)` and\n```\n[in a block](nowhere.md)\n```\n"
        "[gone](sub/missing.md) [bad anchor](sub/page.md#nope) [bad here](#there) [block](sub/page.md#not-a-heading)\n"
    )
    problems = broken_links(tmp_path / "index.md")
    assert [p.split(" (")[0] for p in problems] == [
        "index.md: sub/missing.md", "index.md: sub/page.md#nope", "index.md: #there", "index.md: sub/page.md#not-a-heading",
    ]
    assert "no file" in problems[0] and "no heading with anchor #nope in page.md" in problems[1]


def test_slugs_follow_mkdocs() -> None:
    assert slugify("Results: a student cut from the teacher") == "results-a-student-cut-from-the-teacher"
    assert slugify("Optuna: `+sweep=optuna`, `+sweep=optuna_lm`") == "optuna-sweepoptuna-sweepoptuna_lm"
    assert slugify("AMD EPYC (family 25 model 1; AVX2, no AVX-512, no bf16 instructions)") == (
        "amd-epyc-family-25-model-1-avx2-no-avx-512-no-bf16-instructions")
    assert slugify("Wall time of `make run`") == "wall-time-of-make-run"


def test_every_doc_page_is_in_the_site_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [page for item in node for page in pages(item)]
        return [page for value in node.values() for page in pages(value)]

    nav = pages(config["nav"])
    assert all((DOCS / page).is_file() for page in nav), [page for page in nav if not (DOCS / page).is_file()]
    assert sorted(nav) == sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci.index("make test") < ci.index("make docs")  # CI builds the site after the tests
