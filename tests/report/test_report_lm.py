"""kd.report on language-model runs: perplexity columns, the lower perplexity as the best configuration,
plots of perplexity, and a report mixing language-model and classification runs. Run folders are
written by hand (metrics.json, config_resolved.yaml, .hydra/overrides.yaml), no training."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from kd.report.__main__ import main as report_main
from kd.report.table import write_report
from kd.task import lower_is_better

LM = {"data": "lm_fortunes", "teacher": "llama_tiny", "student": "llama_tiny", "loss": "kd"}
IMAGE = {"data": "synthetic", "teacher": "tiny", "student": "tiny", "loss": "kd"}
# test/ppl per temperature and seed: T=2 has the lower perplexity, T=1 the higher next-token accuracy.
PPL = {1: [20.0, 22.0], 2: [15.0, 16.0]}
LM_ACC = {1: [0.40, 0.42], 2: [0.30, 0.32]}


def write_run(folder: Path, choices: dict[str, str], modality: str, temperature: float, seed: int,
              metrics: dict[str, Any] | None) -> None:
    """A run folder as ``kd.run`` leaves it (the files ``kd.report`` reads); ``metrics`` None: failed."""
    (folder / ".hydra").mkdir(parents=True)
    overrides = [f"{k}={v}" for k, v in choices.items()] + [f"loss.temperature={temperature}", f"seed={seed}"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"seed": seed, "data": {"name": choices["data"], "modality": modality},
              "loss": {"temperature": temperature, "alpha": 0.5}, "hydra_choices": choices}
    (folder / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    if metrics is None:
        failure = {"status": "failed", "error_type": "RuntimeError", "error": "out of memory", "overrides": overrides}
        (folder / "failed.json").write_text(json.dumps(failure))
    else:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def lm_metrics(t: int, seed: int, bpb: bool = True) -> dict[str, Any]:
    ppl = PPL[t][seed]
    metrics = {"test/ppl": ppl, "val/ppl": ppl + 1, "val/ppl_best": ppl + 0.5, "test/teacher_ppl": 10.0,
               "test/acc": LM_ACC[t][seed], "test/agreement": 0.5 + 0.01 * t, "test/kl": 0.2 / t,
               "train/tokens_per_s": 1000.0, "student/ms_per_token": 4.2, "teacher/ms_per_token": 9.5,
               "student/params": 2e5, "teacher/params": 1e6, "val/acc": 0.3}
    if bpb:
        metrics["test/bpb"] = ppl / 10
    return metrics


def write_lm_sweep(root: Path, bpb: bool = True) -> None:
    for t in PPL:
        for seed in (0, 1):
            write_run(root / f"lm_t{t}_s{seed}", LM, "lm", t, seed, lm_metrics(t, seed, bpb))


def table(report: str) -> dict[str, dict[str, str]]:
    """The markdown table of ``report.md`` as {configuration: {column header: cell}}."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    return {row[0]: dict(zip(head, row, strict=True)) for row in rows}


def cell(mean: float, std: float, scale: float = 1.0) -> str:
    return f"{scale * mean:.2f} ± {scale * std:.2f}"


def test_the_direction_of_each_metric() -> None:
    for key in ("test/ppl", "val/ppl_best", "test/teacher_ppl", "test/bpb", "test/teacher_bpb", "test/kl", "test/ece",
                "student/ms_per_token", "student/latency_ms", "train/loss", "train/loss/kd"):
        assert lower_is_better(key), key
    for key in ("test/acc", "val/acc_best", "test/agreement", "train/tokens_per_s", "test/teacher_acc"):
        assert not lower_is_better(key), key


def test_an_lm_sweep_has_perplexity_columns_and_the_lowest_perplexity_wins(tmp_path: Path, capsys) -> None:
    write_lm_sweep(tmp_path / "runs")
    out = tmp_path / "report"
    report_main([str(tmp_path / "runs"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "kd report" in printed and "test/ppl" in printed
    text = (out / "report.md").read_text()
    rows = table(text)
    assert set(rows) == {"loss.temperature=1", "loss.temperature=2"}
    head = list(rows["loss.temperature=1"])
    assert head == ["configuration", "runs", "failed", "test/ppl ↓", "val/ppl_best ↓", "test/bpb ↓",
                    "test/acc (%) ↑", "test/agreement (%) ↑", "test/kl ↓", "student/ms_per_token ↓"]
    assert not any("ece" in h or "acc_best" in h or "latency_ms" in h for h in head)
    for t, ppl in PPL.items():
        row = rows[f"loss.temperature={t}"]
        assert (row["runs"], row["failed"]) == ("2", "0")
        mean, std = statistics.fmean(ppl), statistics.stdev(ppl)
        assert row["test/ppl ↓"].strip("*") == cell(mean, std)  # plain numbers, 2 decimals
        assert row["val/ppl_best ↓"].strip("*") == cell(mean + 0.5, std)
        assert row["test/bpb ↓"].strip("*") == cell(mean / 10, std / 10)
        acc = LM_ACC[t]
        assert row["test/acc (%) ↑"].strip("*") == cell(statistics.fmean(acc), statistics.stdev(acc), 100)
    # best: lowest perplexity (T=2) for ppl, bpb and kl; highest accuracy (T=1) for next-token accuracy
    low, high = rows["loss.temperature=2"], rows["loss.temperature=1"]
    for column in ("test/ppl ↓", "val/ppl_best ↓", "test/bpb ↓", "test/kl ↓", "test/agreement (%) ↑"):
        assert low[column].startswith("**") and not high[column].startswith("**"), column
    assert high["test/acc (%) ↑"].startswith("**") and not low["test/acc (%) ↑"].startswith("**")
    assert "**" not in low["student/ms_per_token ↓"] + high["student/ms_per_token ↓"]  # a tie: no winner
    assert "Best language-model configuration (lowest mean `test/ppl`): `loss.temperature=2`" in text
    assert "lower is better" in text and "classification configuration" not in text
    result = json.loads((out / "report.json").read_text())
    assert result["best"] == {"lm": {"metric": "test/ppl", "configuration": "loss.temperature=2"}}
    assert [r["task"] for r in result["rows"]] == ["lm", "lm"]
    by_name = {r["configuration"]: r for r in result["rows"]}
    assert by_name["loss.temperature=2"]["test/ppl"]["mean"] == pytest.approx(15.5)
    assert by_name["loss.temperature=2"]["test/ppl"]["std"] == pytest.approx(statistics.stdev([15.0, 16.0]))
    plots = {Path(p).name for p in result["plots"]}
    assert plots == {"report_lm_temperature.png", "report_lm_loss.png", "report_lm_cost.png"}
    assert all((out / name).stat().st_size > 1000 for name in plots)


def test_old_lm_runs_without_val_ppl_best_or_bpb_get_no_empty_columns(tmp_path: Path) -> None:
    write_lm_sweep(tmp_path, bpb=False)
    for metrics_file in tmp_path.rglob("metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        del metrics["val/ppl_best"], metrics["student/ms_per_token"]
        metrics_file.write_text(json.dumps(metrics))
    result = write_report([tmp_path], tmp_path / "report")
    assert result["columns"] == ["test/ppl", "test/acc", "test/agreement", "test/kl"]
    assert result["best"]["lm"]["configuration"] == "loss.temperature=2"


def test_a_mixed_report_shows_the_union_of_columns_and_the_best_per_task(tmp_path: Path) -> None:
    write_lm_sweep(tmp_path / "runs", bpb=False)  # no LM run has bits per byte: no such column
    for t, accs in ((1, [0.80, 0.82]), (4, [0.85, 0.87])):
        for seed, acc in enumerate(accs):
            metrics = {"test/acc": acc, "val/acc_best": acc + 0.01, "test/agreement": 0.9, "test/kl": 0.1,
                       "test/ece": 0.02, "test/teacher_acc": 0.9, "student/params": 8618, "teacher/params": 19082}
            write_run(tmp_path / "runs" / f"img_t{t}_s{seed}", IMAGE, "image", t, seed, metrics)
    write_run(tmp_path / "runs" / "lm_failed", LM, "lm", 2, 9, None)  # a failed LM job, third seed of T=2
    out = tmp_path / "report"
    result = write_report([tmp_path / "runs"], out)
    assert result["columns"] == ["test/acc", "val/acc_best", "test/agreement", "test/kl", "test/ece", "test/ppl",
                                 "val/ppl_best", "student/ms_per_token"]  # union, less test/bpb, student/latency_ms
    text = (out / "report.md").read_text()
    rows = table(text)
    assert "test/bpb ↓" not in rows[next(iter(rows))] and "student/latency_ms ↓" not in rows[next(iter(rows))]
    lm_low = next(r for name, r in rows.items() if "lm_fortunes" in name and "temperature=2" in name)
    image_best = next(r for name, r in rows.items() if "synthetic" in name and "temperature=4" in name)
    image_other = next(r for name, r in rows.items() if "synthetic" in name and "temperature=1" in name)
    assert (lm_low["runs"], lm_low["failed"]) == ("2", "1")
    assert lm_low["test/ppl ↓"] == "**" + cell(15.5, statistics.stdev([15.0, 16.0])) + "**"
    assert lm_low["test/ece ↓"] == "-" and image_best["test/ppl ↓"] == "-"
    assert image_best["test/acc (%) ↑"] == "**" + cell(0.86, statistics.stdev([0.85, 0.87]), 100) + "**"
    assert not image_other["test/acc (%) ↑"].startswith("**")
    assert result["best"]["lm"]["configuration"] == next(n for n in rows if "lm_fortunes" in n and "=2" in n)
    assert result["best"]["classification"] == {"metric": "test/acc",
                                                "configuration": next(n for n in rows if "synthetic" in n and "=4" in n)}
    assert "Best language-model configuration (lowest mean `test/ppl`)" in text
    assert "Best classification configuration (highest mean `test/acc`)" in text
    assert "next-token accuracy" in text and "## Failed runs" in text and "out of memory" in text
    plots = {Path(p).name for p in result["plots"]}
    assert {"report_temperature.png", "report_lm_temperature.png", "report_loss.png", "report_lm_loss.png"} <= plots


def test_chat_runs_get_rouge_columns_and_a_quality_against_speed_plot(tmp_path: Path) -> None:
    chat = {**LM, "data": "chat_file"}
    rouge = {"loss=ce": [10.0, 12.0], "loss=fkl": [30.0, 31.0]}  # ROUGE-L against the teacher, per loss and seed
    for loss, values in rouge.items():
        for seed, value in enumerate(values):
            metrics = {**lm_metrics(1, seed), "test/rougeL_teacher": value, "test/rougeL_ref": 5.0 + seed,
                       "test/answer_tokens": 40.0}
            write_run(tmp_path / "runs" / f"{loss}_{seed}", {**chat, "loss": loss.split("=")[1]}, "lm", 1, seed, metrics)
    result = write_report([tmp_path / "runs"], tmp_path / "report")
    rows = table((tmp_path / "report" / "report.md").read_text())
    kd, ce = rows["loss=fkl"], rows["loss=ce"]
    assert kd["test/rougeL_teacher ↑"] == f"**{cell(30.5, statistics.stdev([30.0, 31.0]))}**"
    assert ce["test/rougeL_teacher ↑"] == cell(11.0, statistics.stdev([10.0, 12.0])) and "test/rougeL_ref ↑" in ce
    assert not any("answer_tokens" in column for column in ce)  # a length, not a quality: summary only
    assert (tmp_path / "report" / "report_lm_answers.png").stat().st_size > 1000
    assert str(tmp_path / "report" / "report_lm_answers.png") in map(str, result["plots"])
