"""benchmarks/lm_step.py in --tiny mode: every variant runs and the JSON holds what the report needs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from kd.utils.machine import cpuinfo
from tests.paths import REPO

ROOT = REPO
VARIANTS = ["hand_kd", "kd_live", "kd_cached", "ce_only"]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("lm_step_benchmark", ROOT / "benchmarks" / "lm_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The benchmark module; converted tokenizers go to a temporary folder and torch's threads are restored."""
    monkeypatch.setenv("KD_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    threads = torch.get_num_threads()
    yield load_benchmark()
    torch.set_num_threads(threads)


def test_tiny_run_reports_every_variant_with_the_machine_and_ratios_from_its_numbers(bench, tmp_path: Path) -> None:
    out = tmp_path / "lm_step.json"
    returned = bench.main(["--tiny", "--threads", "1", "--steps", "2", "--warmup", "1", "--batch-size", "2",
                           "--block-size", "8", "--top-k", "4", "--isolate", "none", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report == json.loads(json.dumps(returned))

    machine = report["machine"]
    model, flags = bench.cpu_info()
    assert isinstance(machine["cpu"], str) and machine["cpu"] and machine["cpu"] == model
    fields = cpuinfo()
    assert machine["cpu_short"] == bench.cpu_short_name(model, fields.get("cpu family", ""), fields.get("model", ""))
    assert set(machine["flags"]) >= {"avx512_bf16", "amx_bf16", "amx_tile"}
    assert machine["flags"]["avx512_bf16"] == ("avx512_bf16" in flags)
    assert machine["threads"] == 1 and machine["torch"] == torch.__version__

    settings = report["settings"]
    assert settings["teacher"] == "llama_tiny-random" and settings["tokens"] == "random"
    assert (settings["batch_size"], settings["block_size"], settings["top_k"]) == (2, 8, 4)
    assert settings["tokens_per_step"] == 16 and settings["steps"] == 2 and settings["warmup"] == 1

    results = report["results"]
    assert list(results) == VARIANTS
    for name, r in results.items():
        assert math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0, name
        assert r["tokens_per_s"] == pytest.approx(16 / (r["step_ms_median"] / 1000)), name
        assert len(r["step_ms"]) == 2 and len(r["warmup_step_ms"]) == 1
        assert r["peak_rss_mb"] > 0 and math.isfinite(r["first_loss"]), name
    assert report["same_models_and_batches"] is True
    assert "VmHWM" in report["memory_method"] or "ru_maxrss" in report["memory_method"]
    # the hand-written loss is kd's ForwardKL on the same initial student and batch
    assert results["hand_kd"]["first_loss"] == pytest.approx(results["kd_live"]["first_loss"], rel=1e-4)
    assert report["cache"]["top_k"] == 4 and report["cache"]["top_k_kl"] >= 0

    ratios = report["ratios"]
    live = ratios["kd_live_over_hand_kd_tokens_per_s"]
    assert live["value"] == pytest.approx(results["kd_live"]["tokens_per_s"] / results["hand_kd"]["tokens_per_s"])
    assert live["meets_target"] == (live["value"] >= 0.95)
    cached = ratios["kd_cached_over_ce_only_step_time"]
    step_ms = {name: r["step_ms_median"] for name, r in results.items()}
    assert cached["value"] == pytest.approx(step_ms["kd_cached"] / step_ms["ce_only"])
    assert cached["meets_target"] == (cached["value"] <= 1.2)


def test_options_cpu_names_and_ratios_of_a_subset(bench) -> None:
    args = bench.parse_args(["--tiny"])
    assert (args.teacher, args.tokens, args.batch_size, args.block_size, args.student_hidden) == (
        "llama_tiny-random", "random", 2, 16, 16)
    args = bench.parse_args(["--variants", "kd_live,ce_only"])
    assert (args.teacher, args.tokens, args.batch_size, args.block_size, args.top_k) == (
        "smollm2", "python_docs", 8, 128, 64)
    assert (args.student_hidden, args.student_layers, args.steps, args.warmup, args.threads) == (256, 2, 10, 2, 2)
    assert args.variants == ["kd_live", "ce_only"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "kd_live,nope"])
    assert bench.cpu_short_name("Intel(R) Xeon(R) Platinum 8480+") == "intel-xeon-platinum-8480"
    assert bench.cpu_short_name("AMD EPYC 9654 96-Core Processor") == "amd-epyc-9654"
    assert bench.cpu_short_name("AMD EPYC") == "amd-epyc"
    # A name without a model number (cloud VMs) takes family and model: AVX2-only Zen 3 and AVX-512 Zen 4 differ.
    assert bench.cpu_short_name("AMD EPYC", "25", "1") == "amd-epyc-f25m1"
    assert bench.cpu_short_name("AMD EPYC", "25", "17") == "amd-epyc-f25m17"
    assert bench.cpu_short_name("AMD EPYC 9654 96-Core Processor", "25", "17") == "amd-epyc-9654"
    only_live = {"kd_live": {"tokens_per_s": 90.0, "step_ms_median": 2.0}, "hand_kd": {"tokens_per_s": 100.0}}
    assert bench.ratios(only_live) == {"kd_live_over_hand_kd_tokens_per_s": {
        "value": 0.9, "of": "kd_live.tokens_per_s / hand_kd.tokens_per_s", "target": ">= 0.95", "meets_target": False}}
