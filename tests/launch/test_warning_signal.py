"""kd.callbacks.WarningSignal: a cluster's warning signal noted, then handed to the handler that owned it
(submitit's, which requeues the job); the whole path runs through the SLURM stand-ins in
tests/jobs/test_fault_matrix.py."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from kd.callbacks import WarningSignal


@pytest.fixture
def owner():
    """A Python handler on USR2, as submitit installs in a job it runs; the earlier handler comes back after."""
    calls: list[int] = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR2, before)


def test_the_signal_is_noted_then_handed_to_its_owner_once(owner: list[int]) -> None:
    warning = WarningSignal("USR2")
    warning.arm()
    assert not warning.received_anywhere(torch.device("cpu"))
    os.kill(os.getpid(), signal.SIGUSR2)
    assert warning.received and warning.received_anywhere(torch.device("cpu")) and owner == []  # noted, not acted on
    warning.hand_on()  # rank 0 (one process): the owner acts (submitit requeues and exits)
    assert owner == [signal.SIGUSR2] and not warning.received
    os.kill(os.getpid(), signal.SIGUSR2)
    assert owner == [signal.SIGUSR2, signal.SIGUSR2]  # the owner's handler is back in place


def test_without_an_owner_or_a_name_the_signal_keeps_its_default() -> None:
    before = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        for warning in (WarningSignal("USR2"), WarningSignal(None)):
            warning.arm()
            assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
            assert not warning.received_anywhere(torch.device("cpu"))
            warning.hand_on()  # nothing to hand on
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_disarm_restores_the_owner(owner: list[int]) -> None:
    warning = WarningSignal("USR2")
    warning.arm()
    assert signal.getsignal(signal.SIGUSR2) == warning._note  # armed: kd notes the signal first
    warning.disarm()
    os.kill(os.getpid(), signal.SIGUSR2)
    assert owner == [signal.SIGUSR2] and not warning.received
