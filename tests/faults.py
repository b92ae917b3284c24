"""Faults injected into a real kd process, for the fault matrix (``tests/jobs/test_fault_matrix.py``).

``python -m tests.faults '<fault as JSON>' <module> [args ...]`` runs ``python -m <module> args`` with
one fault; :func:`install` injects it in this process (the full-disk cases run in-process). Faults:

- ``{"kill_write": "<glob>"}``: SIGKILL once a file whose name matches is complete in its temporary
  file, before the rename that would make it the real one (the worst moment for a writer);
- ``{"full_disk": "<glob>"}``: the write of a matching file fails half-way with ENOSPC;
- ``{"kill_step": n, "job": j}``: SIGKILL as the student's training step ``n`` (its global step) begins,
  in the ``j``-th job of a multirun (default: any job);
- ``{"signal_step": n, "signal": "SIGUSR2"}``: that signal instead (a cluster's warning), in a job's
  first attempt only (not once SLURM restarted it: ``SLURM_RESTART_COUNT``).

Files are written through ``kd.utils.files.replaced_atomically`` and Lightning's
``TorchCheckpointIO.save_checkpoint``; both are wrapped, kd's code is not changed.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import runpy
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _matches(path: str | Path, pattern: str | None) -> bool:
    return pattern is not None and fnmatch.fnmatch(Path(path).name, pattern)


def _fill_disk(path: Path) -> None:
    """Cut ``path`` to half its bytes (what reached the disk) and fail as a full disk does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _after_write(path: str | Path, written: Path, fault: dict[str, Any]) -> None:
    if _matches(path, fault.get("kill_write")):
        os.kill(os.getpid(), signal.SIGKILL)
    if _matches(path, fault.get("full_disk")):
        _fill_disk(written)


def install(fault: dict[str, Any], patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Inject ``fault`` into this process (see the module docstring); ``patch``: how to replace an
    attribute (``monkeypatch.setattr`` undoes it after a test)."""
    import kd.models.names
    import kd.utils.files
    from kd.module import DistillModule  # first: kd makes torchvision importable before Lightning imports it

    original = kd.utils.files.replaced_atomically

    @contextlib.contextmanager
    def faulty(path: str | Path) -> Iterator[Path]:
        with original(path) as tmp:
            yield tmp
            _after_write(path, tmp, fault)

    patch(kd.utils.files, "replaced_atomically", faulty)
    patch(kd.models.names, "replaced_atomically", faulty)

    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    save = TorchCheckpointIO.save_checkpoint

    def faulty_save(self: TorchCheckpointIO, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save(self, checkpoint, path, storage_options)
        _after_write(path, Path(path), fault)

    patch(TorchCheckpointIO, "save_checkpoint", faulty_save)

    if "kill_step" in fault or "signal_step" in fault:
        step = DistillModule.training_step
        at, sent = fault.get("kill_step", fault.get("signal_step")), signal.Signals[fault.get("signal", "SIGKILL")]

        def killed_step(self: DistillModule, batch: dict[str, Any], batch_idx: int) -> Any:
            trainer = getattr(self, "_trainer", None)  # None: preflight's dry run
            first_attempt = os.environ.get("SLURM_RESTART_COUNT", "0") == "0"  # a requeued job is not signalled again
            if trainer is not None and trainer.global_step == at and _in_job(fault.get("job")) and first_attempt:
                os.kill(os.getpid(), sent)
            return step(self, batch, batch_idx)

        patch(DistillModule, "training_step", killed_step)


def _in_job(job: int | None) -> bool:
    if job is None:
        return True
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and HydraConfig.get().job.num == job


if __name__ == "__main__":
    install(json.loads(sys.argv[1]))
    module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=False)
