"""Every ``python -m kd.run`` command in the README, docs/ and the configs' comments composes and passes
kd's config check.

A command is read as a user would paste it: up to a backtick, ``|`` or a ``#`` comment, with ``\\``
continued lines joined, split as the shell splits it. A sweep is expanded as Hydra's basic sweeper
expands it (``kd.jobs.sweep_check.sweep_jobs``' way) and every job is checked; an Optuna sweep's search
space is the sweeper's and is not expanded. The commands the docs show as refused must be refused, and
those that need the reader's own files or code are named below, not run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from kd.errors import ConfigError
from kd.jobs.validate import check_config
from tests.paths import CONF, REPO

COMMAND = re.compile(r"python -m kd\.run((?:\s[^`|#]*)?)")
# Commands that hold a placeholder for the reader's value, or that ask for help rather than a run.
PLACEHOLDER = re.compile(r"<[^>]*>|…|\$\{|--help|--cfg|\(|(?:^|\s)\[")  # [optional arguments] too
# Options, files and modules that the docs have the reader write first (docs/extending.md, images.md, ...),
# and files that an earlier step of the same page writes (the benchmark's trained teachers).
THE_READERS_OWN = ("loss=logit_mse", "loss=hellinger", "data=my_images", "sweep=my_launcher", "my_chats.jsonl",
                   "my_images.npz", "mypkg.", "file:///path/to/my_conf", "photos/", "outputs/benchmark_pairs/")
# Commands the docs show being refused, with what kd says.
REFUSED = {"loss=kd loss.temperature=-1": "loss.temperature=-1: must be a number > 0"}


def documented_commands(pages: list[Path]) -> Iterator[tuple[str, str]]:
    """``(page:line, arguments)`` of every ``python -m kd.run`` in ``pages``."""
    for page in pages:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            for match in COMMAND.finditer(line):
                text, below = match.group(1), number
                while text.rstrip().endswith("\\") and below + 1 < len(lines):
                    below += 1
                    following = lines[below].lstrip().removeprefix("#") if page.suffix == ".yaml" else lines[below]
                    text = text.rstrip()[:-1] + " " + following.split("#")[0]
                yield f"{page.name}:{number + 1}", text.strip()


def check_command(args: str) -> None:
    """Compose and check every job of ``python -m kd.run <args>`` (a sweep's, as Hydra lists them)."""
    argv = [a for a in shlex.split(args) if a != "-m"]
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(argv), None)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for job in jobs:
            check_config(compose(config_name="train", overrides=list(job)), list(job), early_wandb=False)


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "conf").rglob("*.yaml"))]
COMMANDS = sorted({args: where for where, args in documented_commands(PAGES)}.items(), key=lambda item: item[1])
RUNNABLE = [(where, args) for args, where in COMMANDS
            if not PLACEHOLDER.search(args) and not any(own in args for own in THE_READERS_OWN)]


def test_the_docs_show_commands_to_check() -> None:
    assert len(COMMANDS) > 60 and len(RUNNABLE) > 50
    assert set(REFUSED) <= {args for _, args in RUNNABLE}
    assert sum(args.startswith("-m ") or " -m " in args for _, args in RUNNABLE) > 5  # sweeps
    assert any(args.startswith("data=fashion_mnist data.module.augment=") for _, args in RUNNABLE)  # continued lines


@pytest.mark.parametrize(("where", "args"), RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_a_documented_command_composes_and_passes_the_config_check(where: str, args: str) -> None:
    if args in REFUSED:
        with pytest.raises(ConfigError, match=re.escape(REFUSED[args])):
            check_command(args)
    else:
        check_command(args)


def test_a_bad_command_is_read_whole_and_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\npython -m kd.run -m loss=kd \\\n    loss.temperature=1,0   # a comment\n```\n"
                    "`python -m kd.run loss=dkd`; then\n", encoding="utf-8")
    assert list(documented_commands([page])) == [("page.md:2", "-m loss=kd      loss.temperature=1,0"),
                                                 ("page.md:5", "loss=dkd")]
    with pytest.raises(ConfigError, match="loss.temperature=0"):
        check_command("-m loss=kd      loss.temperature=1,0")
