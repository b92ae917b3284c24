"""A loss that turns non-finite in one process of a multi-process job stops every process at that step,
with the same message (two real gloo processes), instead of leaving the others at the next collective."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Any

import torch
import torch.distributed as dist

from kd.errors import RunError
from kd.finite import check_finite_loss


def _process(rank: int, port: int, said: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    nan = torch.tensor(float("nan"))
    parts = {"ce": torch.tensor(1.0), "kd": nan if rank == 1 else torch.tensor(0.5)}
    try:
        check_finite_loss(nan if rank == 1 else torch.tensor(1.5), parts, epoch=0, step=7)
        said.put((rank, "went on"))
    except RunError as error:
        said.put((rank, str(error)))
    finally:
        dist.destroy_process_group()


def test_a_nan_in_one_process_stops_both_with_one_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    said = context.Queue()
    processes = [context.Process(target=_process, args=(rank, port, said)) for rank in (0, 1)]
    for process in processes:
        process.start()
    messages = dict(said.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert messages[0] == messages[1], messages
    assert messages[0].startswith("loss term 'kd' (train/loss/kd) became non-finite at epoch 0, step 7 in at least "
                                  "one of the 2 processes; the run stopped before this step's update")
