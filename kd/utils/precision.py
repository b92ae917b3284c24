"""``trainer.precision: auto``: the precision each model kind runs at on this device, decided once at
start-up (:func:`apply_auto_precision`) from its bf16 support (``kd.launch.hardware``) and the
measurements in docs/speed.md#precision-auto; and a warning before bf16 asked for by name runs emulated."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf, open_dict

from kd.launch.hardware import BF16_FLAGS, decide_hardware, job_hardware
from kd.task import task_for

AUTO = "auto"
MEASURED = "docs/speed.md#precision-auto"
# Keys that can ask for bf16, and their fp32 value.
FP32 = {"trainer.precision": "32-true", "teacher.precision": "32-true", "teacher_outputs.precision": "32-true",
        "teacher.net.dtype": "float32", "student.net.dtype": "float32"}


@dataclass(frozen=True)
class Pick:
    """What ``auto`` runs a model kind's stages at where bf16 is native; 32-true where torch would emulate bf16."""

    student: str  # Lightning precision of the student's stage
    teacher: str  # of the teacher's (its training stage and, for frozen pretrained teachers, its weights)


# Model kind (kd.task: Task.model_kind) -> the pick; the measurements: docs/speed.md#precision-auto.
# Emulated bf16 ran 5-20x slower than fp32 on an AVX2-only CPU for every kind.
PICKS = {
    "image": Pick("32-true", "bf16-mixed"),  # student no faster in bf16; teacher stage 1.5-1.9x at equal accuracy
    "text": Pick("bf16-mixed", "bf16-mixed"),  # MiniLM steps 2.8x faster on Intel AMX
    "language model": Pick("bf16-mixed", "bf16-mixed"),  # the cut student's steps 1.4-1.9x faster on Intel AMX
}


def model_kind(cfg: DictConfig, role: str) -> str:
    """The kind of ``cfg``'s ``role`` model (student or teacher): image, text or language model."""
    return task_for(OmegaConf.select(cfg, f"{role}.modality"), key=f"{role}.modality").model_kind


def native_bf16(accelerator: str = "auto") -> bool:
    """Whether the device a job runs on computes bf16 natively: a bf16-capable CUDA GPU, else the CPU's flags."""
    return decide_hardware(str(accelerator)).bf16_native


def auto_precision(cfg: DictConfig, role: str) -> str:
    """The precision ``auto`` picks for ``cfg``'s ``role`` model (student or teacher) on this device."""
    pick = PICKS[model_kind(cfg, role)]
    return getattr(pick, role) if job_hardware(cfg).bf16_native else "32-true"


def stage_precision(cfg: DictConfig, role: str) -> str | int:
    """The precision the ``role`` stage trains at: ``trainer.precision`` (the teacher's: ``teacher.precision``
    where set), with ``auto`` decided by :func:`auto_precision`."""
    asked = OmegaConf.select(cfg, "teacher.precision") if role == "teacher" else None
    asked = asked if asked is not None else cfg.trainer.get("precision", "32-true")
    return auto_precision(cfg, role) if asked == AUTO else asked


def apply_auto_precision(cfg: DictConfig) -> str | None:
    """Write what ``auto`` means here into ``cfg`` before anything reads it: ``trainer.precision`` (the
    student's), ``teacher.precision`` (the teacher stage's, where it differs; null follows
    ``trainer.precision``) and a ``net.dtype: auto`` (bfloat16 where its stage takes bf16). Returns the
    start-up line, or None."""
    student_auto, teacher_asked = cfg.trainer.get("precision") == AUTO, OmegaConf.select(cfg, "teacher.precision")
    dtypes = [role for role in ("student", "teacher") if OmegaConf.select(cfg, f"{role}.net.dtype") == AUTO]
    if not (student_auto or teacher_asked == AUTO or dtypes):
        return None
    chosen = {role: stage_precision(cfg, role) for role in ("student", "teacher")}
    writes: dict[str, tuple[str, str | int]] = {}  # key: (role, value)
    if student_auto:
        writes["trainer.precision"] = ("student", chosen["student"])
    if teacher_asked == AUTO or (teacher_asked is None and student_auto and chosen["teacher"] != chosen["student"]):
        writes["teacher.precision"] = ("teacher", chosen["teacher"])  # null keeps following trainer.precision
    for role in dtypes:
        writes[f"{role}.net.dtype"] = (role, "bfloat16" if "bf16" in str(chosen[role]) else "float32")
    with open_dict(cfg):
        for key, (_, value) in writes.items():
            OmegaConf.update(cfg, key, value, force_add=True)
    picked = ", ".join(f"{key}={value} ({model_kind(cfg, role)} {role})" for key, (role, value) in writes.items())
    hardware = job_hardware(cfg)
    basis = f"bf16 native: {hardware.bf16_basis}" if hardware.bf16_native else f"bf16 emulated: {hardware.bf16_basis}"
    return f"[kd] precision auto ({basis}): {picked}; measurements: {MEASURED}"


def emulated_bf16_warning(cfg: DictConfig) -> str | None:
    """A warning naming the precision and dtype keys that ask for bf16 on a device without bf16 instructions."""
    keys = {key: fp32 for key, fp32 in FP32.items() if "bf16" in str(OmegaConf.select(cfg, key)).replace("bfloat", "bf")}
    hardware = job_hardware(cfg)
    if not keys or hardware.bf16_native:
        return None
    asked = ", ".join(f"{key}={OmegaConf.select(cfg, key)}" for key in keys)
    name = hardware.name
    return (f"[kd] warning: {asked}, but {name} has no bf16 instructions ({', '.join(BF16_FLAGS[:2])}), so torch "
            f"emulates bf16 and runs slower, not faster: {MEASURED}. Set "
            f"{' and '.join(f'{key}={fp32}' for key, fp32 in keys.items())}, or trainer.precision=auto to take "
            "bf16 only where it is native and measured faster.")
