"""benchmarks/speed_table.py renders the Speed tables of docs/speed.md from result files (frozen copies of two
CPUs' results in tests/fixtures/speed_results, so that re-measuring into benchmarks/results changes nothing here)."""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

from tests.paths import REPO

ROOT = REPO
FROZEN = ROOT / "tests" / "fixtures" / "speed_results"
SPEED_PAGE = ROOT / "docs" / "speed.md"


def load_script():
    spec = importlib.util.spec_from_file_location("speed_table", ROOT / "benchmarks" / "speed_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cpu", ["amd-epyc-f25m1", "amd-epyc-f25m17"])
def test_each_cpus_tables_match_their_snapshot(cpu: str) -> None:
    """The rendered section equals ``tests/fixtures/speed_results/<cpu>.md`` (re-write the snapshots with
    ``KD_UPDATE_SNAPSHOTS=1`` after a deliberate change to the script, and read the diff)."""
    text = load_script().render(cpu, FROZEN)
    snapshot = FROZEN / f"{cpu}.md"
    if os.environ.get("KD_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(text)
    assert text == snapshot.read_text()


def test_the_snapshots_hold_the_measured_figures() -> None:
    """A few figures from the frozen result files, so that a snapshot written from a broken script fails."""
    avx2, avx512 = (load_script().render(cpu, FROZEN) for cpu in ("amd-epyc-f25m1", "amd-epyc-f25m17"))
    assert avx2.startswith("### AMD EPYC (family 25 model 1; AVX2, no AVX-512, no bf16 instructions)")
    assert "| 3013 | **4.38×** the plain loop (median of 5 rounds) |" in avx2
    assert "| **speed-up** | **2.58×** |" in avx2 and "Not measured" not in avx2
    assert "test acc 93.48 % against 93.55 %; top-1 agreement 99.81 %" in avx512
    assert re.search(r"Not measured on this CPU: step_throughput_resnet18_to_resnet10t-amd-epyc-f25m17\.json, "
                     r"text_precision-amd-epyc-f25m17\.json\.$", avx512.strip())


def test_a_cpu_without_results_is_an_error_that_says_how_to_measure() -> None:
    with pytest.raises(SystemExit, match="no results for CPU 'intel-nothing'.*benchmarks/speed_suite.sh"):
        load_script().render("intel-nothing", FROZEN)


def test_the_suite_calls_scripts_that_exist() -> None:
    suite = (ROOT / "benchmarks" / "speed_suite.sh").read_text()
    scripts = set(re.findall(r"benchmarks/(\w+\.py)", suite))
    assert scripts >= {"step_throughput.py", "startup.py", "sweep_cache.py", "teacher_precision.py", "speed_table.py"}
    assert all((ROOT / "benchmarks" / name).is_file() for name in scripts)


@pytest.mark.parametrize("cpu", ["amd-epyc-f25m1", "amd-epyc-f25m17"])
def test_each_cpus_section_heading_is_one_of_the_speed_pages_sections(cpu: str) -> None:
    """The script's output is pasted into docs/speed.md's Benchmarks: one ``###`` section per CPU kind."""
    heading = load_script().render(cpu, FROZEN).splitlines()[0]
    page = SPEED_PAGE.read_text().splitlines()
    assert heading in page, f"{heading!r} is not a heading of {SPEED_PAGE.name}"
    assert page.index(heading) > page.index("## Benchmarks")
