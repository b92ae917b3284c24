"""``python -m kd.export``: a tiny finished run round-trips through ONNX, the parity check and INT8
quantisation; bad folders and a too-lossy INT8 model are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kd.export.__main__ import main as export_main
from kd.export.measure import median_ms
from kd.export.onnx_model import run as run_onnx
from kd.export.onnx_model import session
from kd.export.options import parse, unused_options
from kd.export.run_folder import FinishedRun
from kd.job import train
from kd.taps import call_model


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny KD run on synthetic images (teacher trained first), finished and tested."""
    from tests.conftest import TINY, compose_config

    tmp = tmp_path_factory.mktemp("export")
    cfg = compose_config([*TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=1.0"], tmp)
    train(cfg)
    return Path(cfg.paths.output_dir)


def export(run: Path, *args: str) -> dict:
    export_main([str(run), "--repeats", "2", *args])
    return json.loads((run / "deploy.json").read_text())


@pytest.mark.parametrize("method", ["static", "dynamic"])
def test_student_and_teacher_round_trip_through_onnx_and_int8(finished_run: Path, method: str) -> None:
    deploy = export(finished_run, "--quantize", method, "--max-accuracy-drop", "1")
    metrics = json.loads((finished_run / "metrics.json").read_text())
    student, teacher, int8 = (deploy["models"][k] for k in ("student", "teacher", "student_int8"))
    assert student["max_abs_logit_diff"] < 1e-4 and teacher["max_abs_logit_diff"] < 1e-4  # float32 parity
    assert student["test/acc"] == student["test/acc_pytorch"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert teacher["test/acc"] == pytest.approx(metrics["test/teacher_acc"], abs=1e-6)
    assert student["params"] == metrics["student/params"] and teacher["params"] == metrics["teacher/params"]
    assert int8["quantization"] == method and int8["accuracy_drop"] == pytest.approx(
        student["test/acc"] - int8["test/acc"])
    assert 0 < int8["max_abs_logit_diff"] < 5  # quantised: close to, not equal to, the float model
    for name in ("student.onnx", "teacher.onnx", "student.int8.onnx"):
        assert (finished_run / "deploy" / name).stat().st_size > 1000
    for key in ("ort_b1_t1", "ort_b64_t1", "ort_b1_t2", "ort_b64_t2", "torch_b1_t1", "torch_b64_t2"):
        assert student["latency_ms"][key] > 0
    assert set(int8["latency_ms"]) == {"ort_b1_t1", "ort_b64_t1", "ort_b1_t2", "ort_b64_t2"}
    assert student["latency_runs"] == dict.fromkeys(student["latency_ms"], 2)  # --repeats 2: tiny models, fast runs
    assert deploy["settings"]["latency_seconds"] == 10.0
    assert deploy["settings"]["quantize"] == method and deploy["checkpoint"] == metrics["best_checkpoint"]
    assert deploy["unused_options"] == []  # every option given applies to an image classifier's INT8 export
    # static activation ranges come from validation batches, never from the test split that judges them
    assert int8["calibration"] == (None if method == "dynamic" else f"{min(4, len(FinishedRun(finished_run).batches('val')))} validation batches")


def test_the_int8_gate_at_its_default_keeps_exactly_the_students_within_one_point(finished_run: Path) -> None:
    try:
        export(finished_run, "--quantize", "static")  # --max-accuracy-drop 0.01
    except SystemExit as exit_:
        assert exit_.code == 2
    int8 = json.loads((finished_run / "deploy.json").read_text())["models"]["student_int8"]
    kept = not int8.get("refused", False)
    assert kept == (int8["accuracy_drop"] <= 0.01) == (finished_run / "deploy/student.int8.onnx").is_file()


def test_a_run_folder_that_moved_exports_from_its_own_checkpoints(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(finished_run, moved)
    recorded = Path(json.loads((moved / "metrics.json").read_text())["best_checkpoint"])
    assert recorded.parent == finished_run / "checkpoints"
    assert FinishedRun(moved).checkpoint == moved / "checkpoints" / recorded.name


def test_a_text_student_exports_with_dynamic_batch_and_length(tmp_path: Path) -> None:
    from tests.conftest import TEXT_TINY, compose_config

    cfg = compose_config([*TEXT_TINY, "trainer.limit_test_batches=1.0"], tmp_path)  # the whole test split
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    deploy = export(run, "--max-accuracy-drop", "1")  # auto: dynamic INT8 for text
    student, int8 = deploy["models"]["student"], deploy["models"]["student_int8"]
    assert student["max_abs_logit_diff"] < 1e-4 and student["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert int8["quantization"] == "dynamic" and "teacher" in deploy["models"]
    sess = session(run / "deploy/student.onnx")
    batch = FinishedRun(run).batches("test")[0]["inputs"]
    for size, length in ((1, 5), (3, batch["input_ids"].shape[1])):  # other batch sizes and lengths than exported
        inputs = {k: v[:size, :length] for k, v in batch.items()}
        expected = call_model(FinishedRun(run).student(), inputs).detach().numpy()
        assert abs(run_onnx(sess, inputs) - expected).max() < 1e-4


def test_an_int8_student_that_loses_too_much_is_refused_and_not_kept(finished_run: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        export(finished_run, "--quantize", "dynamic", "--max-accuracy-drop", "-1")
    assert exit_.value.code == 2
    assert "INT8 student loses" in capsys.readouterr().err
    assert not (finished_run / "deploy/student.int8.onnx").exists()
    assert json.loads((finished_run / "deploy.json").read_text())["models"]["student_int8"]["refused"] is True


def test_a_folder_without_a_finished_run_is_refused_with_what_to_do(tmp_path: Path, capsys) -> None:
    def refusal(folder: Path) -> str:
        with pytest.raises(SystemExit) as exit_:
            export_main([str(folder)])
        assert exit_.value.code == 2
        return capsys.readouterr().err

    assert f"{tmp_path} holds no kd run (a run's folder holds job.json" in refusal(tmp_path)
    assert f"{tmp_path}/typo: no such folder. Give the folder of a finished run" in refusal(tmp_path / "typo")
    (tmp_path / "job.json").write_text(json.dumps({"overrides": ["loss=kd", "seed=3", f"resume={tmp_path}"]}))
    assert (f"that run has not finished (it writes metrics.json when it has tested its best checkpoint). Continue it "
            f"with `python -m kd.run loss=kd seed=3 resume={tmp_path}`, then export it.") in refusal(tmp_path)
    (tmp_path / "failed.json").write_text(json.dumps({"error_type": "RunError", "error": "the loss is NaN at step 3"}))
    assert (f"{tmp_path}: that run failed (RunError: the loss is NaN at step 3), so it has no student to export; "
            f"{tmp_path}/error.txt holds the traceback") in refusal(tmp_path)
    assert "a file, not a folder" in refusal(tmp_path / "job.json")


def test_a_language_model_student_exports_with_perplexity_and_ms_per_token(tmp_path: Path) -> None:
    from tests.conftest import compose_config
    from tests.lm.test_lm import LM_TINY

    cfg = compose_config([*LM_TINY, "loss=fkl", "trainer.limit_test_batches=1.0"], tmp_path)
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    deploy = export(run, "--max-perplexity-rise", "10")
    student, teacher, int8 = (deploy["models"][k] for k in ("student", "teacher", "student_int8"))
    assert int8["perplexity_rise"] == pytest.approx(int8["test/ppl"] / student["test/ppl"] - 1)  # the LM gate
    assert student["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-4)  # over the same positions
    assert teacher["test/ppl"] == pytest.approx(metrics["test/teacher_ppl"], rel=1e-4)
    assert student["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6) and student["max_abs_logit_diff"] < 1e-3
    assert student["ms_per_token_ort"] > 0 and student["ms_per_token_pytorch"] > 0 and int8["ms_per_token_ort"] > 0
    assert int8["quantization"] == "dynamic" and int8["test/ppl"] > 0
    # the Hugging Face folder loads with transformers' Auto classes and gives the student's logits
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(student["hugging_face"]["folder"])
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = AutoTokenizer.from_pretrained(folder)("the fortune says", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = FinishedRun(run).student()(input_ids=ids).logits
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
    assert student["hugging_face"]["size_mb"] > 0
    # the GGUF file (f32): its round trip through transformers' GGUF loader is tests/export/test_lm_files.py's
    gguf = student["gguf"]
    assert gguf["file"] == "deploy/student.gguf" and gguf["dtype"] == "f32"
    assert gguf["size_mb"] == pytest.approx((run / gguf["file"]).stat().st_size / 1e6, abs=1e-3)
    # the KV-cache generator: its greedy tokens are PyTorch's, and each token costs less than without the cache
    with_past = student["with_past"]
    assert with_past["file"] == "deploy/student.with_past.onnx" and (run / with_past["file"]).is_file()
    assert with_past["same_greedy_tokens"] is True and with_past["max_abs_logit_diff"] < 1e-4
    assert 0 < student["ms_per_token_ort_kv"] < student["ms_per_token_ort"] and student["ms_per_token_pytorch_kv"] > 0
    assert "gguf" not in teacher and "with_past" not in int8


def test_pareto_front_keeps_the_points_nothing_beats_on_both() -> None:
    from kd.report.tradeoff import pareto_front

    pairs = [(1.0, 80.0), (2.0, 79.0), (2.0, 85.0), (5.0, 84.0), (10.0, 90.0)]
    assert pareto_front(pairs) == [(1.0, 80.0), (2.0, 85.0), (10.0, 90.0)]
    perplexities = [(1.0, 30.0), (2.0, 31.0), (2.0, 20.0), (5.0, 25.0), (10.0, 10.0)]  # lower is better
    assert pareto_front(perplexities, lower_is_better=True) == [(1.0, 30.0), (2.0, 20.0), (10.0, 10.0)]


def test_tradeoff_points_keep_every_run_and_never_mix_runtimes(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    from kd.report.runs import find_runs
    from kd.report.tradeoff import panels, points, tradeoff_plot
    from kd.task import TASKS

    deploy = export(finished_run, "--quantize", "static", "--max-accuracy-drop", "1")
    not_exported = tmp_path / "not_exported"
    shutil.copytree(finished_run, not_exported, ignore=shutil.ignore_patterns("deploy*"))
    runs = find_runs([finished_run, not_exported])
    found = points(runs, TASKS["image"])
    by_runtime = {rt: sorted((p.run.name, p.kind) for p in found if p.runtime == rt) for rt in ("pytorch", "onnxruntime")}
    names = finished_run.name, not_exported.name
    assert by_runtime["pytorch"] == sorted([(n, k) for n in names for k in ("distilled", "teacher")])  # no run dropped
    assert by_runtime["onnxruntime"] == [(names[0], "distilled"), (names[0], "int8"), (names[0], "teacher")]
    student = next(p for p in found if p.runtime == "onnxruntime" and p.kind == "distilled")
    model = deploy["models"]["student"]
    assert (student.size_mb, student.latency, student.quality) == (
        model["size_mb"], model["latency_ms"]["ort_b64_t2"], 100 * model["test/acc"])
    size, pytorch, onnx = panels(found, TASKS["image"])
    assert len(size[1]) == 5 and len(pytorch[1]) == 4 and len(onnx[1]) == 3  # exported run: its files' sizes
    assert "PyTorch" in pytorch[0] and "onnxruntime" in onnx[0]
    assert tradeoff_plot(runs, tmp_path / "tradeoff.png", TASKS["image"]).stat().st_size > 1000


def test_language_model_runs_have_a_tradeoff_plot_of_perplexity(tmp_path: Path) -> None:
    from kd.report.runs import Run
    from kd.report.tradeoff import points, tradeoff_plot
    from kd.task import TASKS

    def lm_run(name: str, job_type: str, ppl: float, ms: float) -> Run:
        metrics = {"job_type": job_type, "task": "lm", "test/ppl": ppl, "test/teacher_ppl": 23.0,
                   "student/size_mb": 57.0, "student/ms_per_token": ms, "teacher/size_mb": 540.0,
                   "teacher/ms_per_token": 140.0}
        return Run(tmp_path / name, [], {"data": {"modality": "lm"}}, metrics)

    runs = [lm_run("kd", "distill", 900.0, 13.0), lm_run("ce", "baseline", 1100.0, 13.5)]
    found = points(runs, TASKS["lm"])
    assert sorted((p.kind, p.quality, p.latency) for p in found) == [
        ("distilled", 900.0, 13.0), ("scratch", 1100.0, 13.5), ("teacher", 23.0, 140.0), ("teacher", 23.0, 140.0)]
    assert points(runs, TASKS["image"]) == []
    assert tradeoff_plot(runs, tmp_path / "report_lm_tradeoff.png", TASKS["lm"]).stat().st_size > 1000


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--repeats", "0", "argument --repeats: 0 is below 1; give 1 or more"),
    ("--calibration-batches", "two", "argument --calibration-batches: 'two' is not an integer"),
    ("--parity-tolerance", "-0.1", "argument --parity-tolerance: -0.1 is below 0.0"),
    ("--quantize", "int4", "argument --quantize: invalid choice: 'int4'"),
])
def test_bad_export_options_are_refused_before_anything_is_written(
    tmp_path: Path, capsys, option: str, value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        export_main([str(tmp_path), option, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no deploy/ folder, no deploy.json


class FakeClock:
    """``time.perf_counter`` for :func:`median_ms`: every call of the timed function takes ``step`` s."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.calls = 0.0, step, 0

    def perf_counter(self) -> float:
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += self.step


@pytest.mark.parametrize(("step", "seconds", "warmups", "runs"), [
    (0.001, 10.0, 3, 20),  # fast: every repeat, within the time
    (0.5, 10.0, 3, 20),  # half a second a run: 3 warm-ups, and 20 runs take the 10 s
    (2.0, 10.0, 1, 5),  # seconds a run: one warm-up, then runs until 10 s have passed
    (30.0, 10.0, 1, 3),  # a language model's batch of 64: at least 3 timed runs
    (30.0, float("inf"), 1, 20),  # no time limit: every repeat
])
def test_a_latency_is_timed_for_its_seconds_with_at_least_three_runs(
    monkeypatch: pytest.MonkeyPatch, step: float, seconds: float, warmups: int, runs: int
) -> None:
    clock = FakeClock(step)
    monkeypatch.setattr("kd.export.measure.time.perf_counter", clock.perf_counter)
    ms, timed = median_ms(clock.call, repeats=20, warmup=3, seconds=seconds)
    assert (timed, clock.calls - timed, ms) == (runs, warmups, 1000 * step)


def test_an_option_this_export_does_not_use_is_named_not_ignored() -> None:
    """An option away from its default that the run's kind or the quantisation leaves unused is listed
    (printed and kept in deploy.json), with what it applies to; the defaults are never listed."""
    assert unused_options(parse(["run"]), language_model=False, method="static") == []
    image = parse(["run", "--gguf-dtype", "f16", "--max-perplexity-rise", "0.1", "--max-accuracy-drop", "0.02"])
    assert unused_options(image, language_model=False, method="static") == [
        "--max-perplexity-rise applies to language models", "--gguf-dtype applies to language models"]
    assert unused_options(image, language_model=True, method="dynamic") == ["--max-accuracy-drop applies to classifiers"]
    calibrated = parse(["run", "--calibration-batches", "8", "--max-accuracy-drop", "0.02", "--quantize", "none"])
    assert unused_options(calibrated, language_model=False, method="none") == [
        "--calibration-batches applies to static quantisation (this export: none)",
        "--max-accuracy-drop judges the INT8 student, which --quantize none leaves out"]
