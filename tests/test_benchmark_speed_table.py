"""benchmarks/speed_table.py renders the README's Speed tables from result files (frozen copies of two
CPUs' results in tests/data/speed_results, so that re-measuring into benchmarks/results changes nothing here)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FROZEN = ROOT / "tests" / "data" / "speed_results"


def load_script():
    spec = importlib.util.spec_from_file_location("speed_table", ROOT / "benchmarks" / "speed_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_avx2_cpus_tables_hold_its_measured_figures() -> None:
    text = load_script().render("amd-epyc-f25m1", FROZEN)
    assert text.startswith("#### AMD EPYC (family 25 model 1; AVX2, no AVX-512, no bf16 instructions)")
    assert "| plain PyTorch KD loop: fp32, default layout, teacher live, no augmentation | 687 | |" in text
    assert "| 3013 | **4.38×** the plain loop (median of 5 rounds) |" in text
    assert "augmented batches | 2714 | **3.97×** the plain loop" in text
    assert "plain loop 192 samples/s, kd's defaults 285 samples/s (**1.44×**" in text
    assert "| 1406 s (fit 140-171 s per job) |" in text and "| 546 s (fit 41-47 s per job) |" in text
    assert "| **speed-up** | **2.58×** |" in text
    assert "| `import kd.run` alone | 12.8 (Lightning 7.4" in text
    assert "bf16 120 against fp32 642 images/s (**0.19×**); randomly initialised teacher: speed only" in text
    assert "training step bf16 35954 ms against fp32 1820 ms (**0.05×** the fp32 speed)" in text
    assert "Not measured" not in text


def test_a_trained_teachers_accuracy_is_shown_and_missing_files_are_named() -> None:
    text = load_script().render("amd-epyc-f25m17", FROZEN)
    assert text.splitlines()[0] == "#### AMD EPYC (family 25 model 17; AVX-512 with bf16, no AMX)"
    assert "**4.79×** the plain loop (median of 3 rounds)" in text  # the rounds the defaults part ran
    assert "test acc 93.48 % against 93.55 %; top-1 agreement 99.81 %" in text
    assert re.search(r"Not measured on this CPU: step_throughput_resnet18_to_resnet10t-amd-epyc-f25m17\.json, "
                     r"text_precision-amd-epyc-f25m17\.json\.$", text.strip())


def test_a_cpu_without_results_is_an_error_that_says_how_to_measure() -> None:
    with pytest.raises(SystemExit, match="no results for CPU 'intel-nothing'.*benchmarks/speed_suite.sh"):
        load_script().render("intel-nothing", FROZEN)


def test_the_suite_calls_scripts_that_exist() -> None:
    suite = (ROOT / "benchmarks" / "speed_suite.sh").read_text()
    scripts = set(re.findall(r"benchmarks/(\w+\.py)", suite))
    assert scripts >= {"step_throughput.py", "startup.py", "sweep_cache.py", "teacher_precision.py", "speed_table.py"}
    assert all((ROOT / "benchmarks" / name).is_file() for name in scripts)
