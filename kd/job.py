"""One job of ``python -m kd.run``: the checks, the teacher stage when a loss term needs a teacher, the
student, the summary, and what a failure leaves (:func:`run_job`).

The teacher comes from ``teacher.ckpt`` or from the trained teachers kept under ``outputs/teachers/``
(trained there first if missing). Everything a run writes lands in its Hydra output directory under
``outputs/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from kd.errors import ConfigError, RunError
from kd.jobs.baseline import find_baseline
from kd.jobs.compatibility import check_shared_vocabulary
from kd.jobs.job_record import write_job_record
from kd.jobs.modality import check_loss_modality
from kd.jobs.preflight import check_output_dir, preflight
from kd.jobs.records import (
    as_run_error,
    describe_job,
    finish_failed_wandb_run,
    record_failure,
    redact_argv,
    report_failure,
    root_cause,
)
from kd.jobs.resume import apply_plan, plan_resume
from kd.jobs.scale_out import check_scale_out
from kd.jobs.unused_overrides import unused_overrides
from kd.jobs.validate import check_config
from kd.launch.hardware import job_device, job_hardware
from kd.launch.launchers import failed_job_value
from kd.launch.processes import is_rank_zero, leave_process_group, processes_per_machine
from kd.task import task_of_config
from kd.teacher.cache import prepare_cached_teacher
from kd.teacher.generations import use_teacher_generations
from kd.teacher.responses import answers_scored_against_teacher, use_teacher_responses, uses_teacher_responses
from kd.teacher.weights import prepare_teacher
from kd.training import build_loss, fit_and_test, set_threads
from kd.utils.allocator import reuse_freed_memory
from kd.utils.cores import CoreLoad, allowed_cores, oversubscription_warning
from kd.utils.files import remove_stale_temporaries
from kd.utils.library_noise import quiet_library_noise
from kd.utils.precision import apply_auto_precision, emulated_bf16_warning


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job (teacher stage when needed, then the student) and return its metrics.

    Order: every config value against its rule (``kd.jobs.validate``), modality and vocabulary
    checks, resume plan (``resume``), output folder check, start-up checks on the data and on throw-away
    models (``kd.jobs.preflight``), the job record (``job.json``), then the teacher stage and the student.
    """
    check_config(cfg, OmegaConf.select(cfg, "run.overrides") or [])
    precision_line = apply_auto_precision(cfg)  # before anything reads a precision or an identity
    loss = build_loss(cfg.loss)
    check_loss_modality(cfg)
    check_shared_vocabulary(cfg, with_teacher=loss.needs_teacher)
    check_scale_out(cfg, loss)
    processes = processes_per_machine(cfg)
    threads = set_threads(cfg.get("threads"), processes)  # cores shared among this machine's ranks
    if cfg.get("reuse_freed_memory", True):
        reuse_freed_memory()  # before the data and models are allocated
    load = CoreLoad() if processes == 1 else None  # read after the start-up checks, which run meanwhile
    # the teacher writes the training texts: continuations of text blocks, or answers to the prompts
    sequence_kd = bool(cfg.loss.get("teacher_generations")) or uses_teacher_responses(cfg)
    uses_teacher = loss.needs_teacher or sequence_kd or answers_scored_against_teacher(cfg)
    if is_rank_zero():
        print(job_hardware(cfg).line(), flush=True)
        if precision_line:
            print(precision_line, flush=True)
        if warning := emulated_bf16_warning(cfg):
            print(warning, flush=True)
        if unused := unused_overrides(cfg, uses_teacher):
            print(f"[kd] not used by this job: {'; '.join(unused)}", flush=True)
    plan = plan_resume(cfg)  # every rank reaches the same plan: rank 0 writes nothing before training starts
    if (reused := apply_plan(cfg, plan)) is not None:
        return reused
    check_output_dir(Path(cfg.paths.output_dir))
    if is_rank_zero():  # what killed runs on this machine left half-written
        remove_stale_temporaries(cfg.paths.log_dir, cfg.paths.teacher_weights_dir, cfg.paths.teacher_outputs_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data.module)
    data_report = preflight(cfg, datamodule, loss.needs_teacher)
    if load is not None and (warning := oversubscription_warning(threads, allowed_cores(), load.others())):
        print(warning, flush=True)
    if plan.action == "fresh" and is_rank_zero():  # a refused job leaves no record of itself to resume
        write_job_record(cfg, Path(cfg.paths.output_dir))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    teacher, teacher_ckpt, teacher_outputs, generations = None, None, {}, None
    if uses_teacher:
        teacher, teacher_ckpt = prepare_teacher(cfg, datamodule)
        teacher.to(job_device(str(cfg.trainer.get("accelerator") or "auto")))  # its own passes run there
        if uses_teacher_responses(cfg):
            generations = use_teacher_responses(cfg, datamodule, teacher, teacher_ckpt)
        elif sequence_kd:
            generations = use_teacher_generations(cfg, datamodule, teacher, teacher_ckpt)
        teacher_outputs = prepare_cached_teacher(cfg, datamodule, loss, teacher, teacher_ckpt, generations)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    with open_dict(cfg):
        cfg.job_type = "distill" if loss.needs_teacher or sequence_kd else "baseline"
    extra = {
        "teacher_ckpt": str(teacher_ckpt) if teacher_ckpt else None,
        "teacher_generations": str(generations) if generations else None,
        "resumed_from": str(plan.checkpoint) if plan.checkpoint else None,
        **data_report,
    }
    _, metrics = fit_and_test(
        cfg, datamodule, loss, teacher, extra=extra, teacher_outputs=teacher_outputs, ckpt_path=plan.checkpoint
    )
    if is_rank_zero():
        print_summary(cfg, metrics)
    return metrics


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_summary(cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """A table of teacher and student results, and the command for the missing baseline."""
    loss_name = OmegaConf.select(cfg, "hydra_choices.loss", default=None) or "this loss"
    task = task_of_config(cfg)
    lm, columns = task.language_model, task.summary + tuple(c for c in task.answer_columns if c in metrics)
    table = Table(title=f"kd summary ({cfg.data.name}, {metrics['epochs']} epochs)")
    for column in ("model", "role", "params", *columns):
        table.add_column(column + (" (next token)" if lm and column == "test/acc" else ""))

    def cells(prefix: str, source: dict[str, Any] = metrics) -> list[str]:
        out = []
        for column in columns:
            stage, name = column.split("/")
            value = None if name.endswith("_best") and prefix else source.get(f"{stage}/{prefix}{name}")
            out.append(_pct(value) if "acc" in name else _num(value))
        return out

    if metrics.get("teacher/params"):
        table.add_row(cfg.teacher.name, "teacher", f"{metrics['teacher/params'] / 1e6:.2f} M", *cells("teacher_"))
    role = f"student ({loss_name})" if metrics["job_type"] == "distill" else "student (from scratch)"
    params = f"{metrics['student/params'] / 1e6:.2f} M"
    table.add_row(cfg.student.name, role, params, *cells(""))
    baseline = find_baseline(cfg) if metrics["job_type"] == "distill" else None
    if baseline:
        table.add_row(cfg.student.name, "student (from scratch)", params, *cells("", baseline[1]))
    # a log file (no terminal) gets the whole table: rich would squeeze it into 80 columns
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    if duplicates := metrics.get("data/train_test_duplicates"):
        console.print(f"data: {duplicates} test samples are exact copies of training samples")
    if "test/agreement" in metrics:
        console.print(f"teacher-student top-1 agreement on test: {_pct(metrics['test/agreement'])}")
    if baseline:
        console.print(f"student from scratch (same data, student, recipe and seed): {baseline[0]}")
    elif metrics["job_type"] == "distill":
        console.print(f"student from scratch, for comparison: python -m kd.run {' '.join(baseline_overrides(cfg))}")
    files = "config, checkpoints/, metrics.json" + (", generations.md" if lm else "")
    console.print(f"outputs: {cfg.paths.output_dir}  ({files})")


def baseline_overrides(cfg: DictConfig) -> list[str]:
    """This job's overrides for the same student without the teacher: ``loss=ce``, every other override
    kept (``paths.*`` and ``hydra.searchpath`` too), less what names this run's own folder or belongs to
    the teacher."""
    student = OmegaConf.select(cfg, "hydra_choices.student", default=None) or cfg.student.name
    experiment = OmegaConf.select(cfg, "hydra_choices.experiment", default=None)
    drop = ("loss", "teacher", "on_policy", "student=", "experiment=", "paths.output_dir", "sweep=", "run.",
            "data.responses=")

    def kept(override: str) -> bool:
        key = override.lstrip("+~")
        if key.startswith("hydra."):  # the run's own folder and launcher: the baseline gets its own
            return key.startswith("hydra.searchpath")
        return not key.startswith(drop)

    responses = ["data.responses=dataset"] if uses_teacher_responses(cfg) else []  # SFT on the data's own answers
    return [*([f"experiment={experiment}"] if experiment else []), "loss=ce", f"student={student}", *responses,
            *filter(kept, cfg.run.get("overrides") or [])]


def run_job(cfg: DictConfig) -> float | None:
    """Run the job ``python -m kd.run`` composed; returns ``optimized_metric`` (``val/acc_best``) for sweepers.

    A failing job leaves ``failed.json`` and ``error.txt`` in its folder. In a multirun the other
    jobs go on (the failed one returns NaN, or under Optuna, which stops a study at NaN, the worst
    value for the study's direction); a single run exits with status 2 for config errors, 3 for run
    errors (non-finite loss, full disk; both reported in one paragraph) and re-raises anything else.
    """
    redact_argv()
    quiet_library_noise()
    multirun = describe_job(cfg)
    try:
        metrics = train(cfg)
    except Exception as raised:
        if not is_rank_zero():  # rank 0 records the job; Lightning stops the job when a rank fails
            raise
        err = as_run_error(root_cause(raised), cfg)
        finish_failed_wandb_run()
        record = record_failure(cfg, err)
        report_failure(err, record, multirun)
        if multirun:
            return failed_job_value()
        if isinstance(err, ConfigError | RunError):
            sys.exit(2 if isinstance(err, ConfigError) else 3)
        raise  # anything else is ``raised`` itself (neither helper changed it): re-raise it as it was
    finally:
        leave_process_group()  # after every rank-dependent step; a multirun's next job starts without one
    return metrics.get(cfg.get("optimized_metric", "val/acc_best"))
