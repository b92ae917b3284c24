"""Multi-process training, without starting processes: each rank's share of the data, rank zero's
role, the checks at start-up, the command Lightning re-runs for the other ranks."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from kd.data.batches import IndexedTensors, PositionSeededBatches, batch_loader
from kd.errors import ConfigError
from kd.jobs.scale_out import check_scale_out
from kd.launch import processes
from kd.launch.hardware import decide_hardware
from kd.launch.processes import process_count, processes_per_machine
from kd.utils.cores import cores_per_process
from tests.conftest import CONF_DIR


def shares(size: int, batch: int, world: int, epoch: int = 1) -> list[list[list[int]]]:
    """Each rank's batches of one epoch: ``out[rank][step]``."""
    out = []
    for rank in range(world):
        sampler = PositionSeededBatches(size, batch, seed=3, rank=rank, world=world)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


@pytest.mark.parametrize(("size", "batch"), [(24, 6), (26, 6), (25, 6)])
def test_ranks_together_take_the_single_process_batches(size: int, batch: int) -> None:
    (single,) = shares(size, batch, world=1)
    ranks = shares(size, batch, world=2)
    assert len(ranks[0]) == len(ranks[1])  # every rank steps the same number of times (DDP needs it)
    for step, (a, b) in enumerate(zip(*ranks, strict=True)):
        assert sorted(a + b) == sorted(single[step])  # the same global batch
        assert not set(a) & set(b) and abs(len(a) - len(b)) <= 1
    dropped = single[len(ranks[0]) :]  # only a last batch too small to give every rank a sample
    assert dropped == ([] if size % batch != 1 else [single[-1]])


def test_the_global_batch_must_split_evenly() -> None:
    with pytest.raises(ConfigError, match=r"data.module.batch_size=7 .* 2 training processes"):
        PositionSeededBatches(20, 7, seed=0, rank=0, world=2)


def test_ranks_draw_their_own_randomness_and_rank_zero_draws_the_single_process_one() -> None:
    draws = {}
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        sampler = PositionSeededBatches(8, 4, seed=5, rank=rank, world=world)
        next(iter(sampler))
        draws[(rank, world)] = torch.rand(3)
    assert torch.equal(draws[(0, 1)], draws[(0, 2)]) and not torch.equal(draws[(0, 2)], draws[(1, 2)])


def test_each_rank_evaluates_its_own_part_of_a_split_once() -> None:
    data = IndexedTensors(torch.zeros(11, 2), torch.arange(11))
    seen = [int(i) for rank in range(3) for b in batch_loader(data, 2, False, share=(rank, 3)) for i in b["index"]]
    assert seen == list(range(11))  # contiguous parts in order, no sample twice, none left out
    whole = [int(i) for b in batch_loader(data, 4, False) for i in b["index"]]  # no process group: all of it
    assert whole == list(range(11))


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["data=synthetic", "teacher=tiny", "student=tiny", *overrides])


def test_trainer_ddp_is_two_processes_with_a_global_batch_that_must_divide() -> None:
    cfg = compose_cfg("trainer=ddp")
    assert (cfg.trainer.strategy, process_count(cfg), cfg.trainer.use_distributed_sampler) == ("ddp", 2, False)
    check_scale_out(cfg)
    with pytest.raises(ConfigError, match=r"data.module.batch_size=63 .* 2 training processes .* multiple of 2"):
        check_scale_out(compose_cfg("trainer=ddp", "data.module.batch_size=63"))
    assert process_count(compose_cfg("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")) == 8


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """``gpus(n)``: the hardware decision sees a CUDA machine with ``n`` visible GPUs (nothing runs on them)."""
    def use(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a GPU")
        decide_hardware.cache_clear()

    yield use
    decide_hardware.cache_clear()


def test_processes_are_counted_as_lightning_counts_devices(gpus) -> None:
    """``auto`` and ``-1`` are every GPU of the machine, not one process (rank 1 would crash at its first step)."""
    gpus(4)
    for devices, expected in (("auto", 4), (-1, 4), (2, 2), ("[0,3]", 2), ("'0,1,2'", 3)):
        assert processes_per_machine(compose_cfg("trainer=ddp", f"trainer.devices={devices}")) == expected, devices
    assert process_count(compose_cfg("trainer=ddp", "trainer.devices=auto", "trainer.num_nodes=2")) == 8
    assert processes_per_machine(compose_cfg("trainer=ddp", "trainer.devices=auto", "trainer.accelerator=cpu")) == 1
    gpus(0)  # a CPU machine: Lightning's CPU accelerator takes a count of processes, and auto is 1
    assert processes_per_machine(compose_cfg("trainer.devices=auto")) == 1
    assert processes_per_machine(compose_cfg("trainer=ddp", "trainer.devices=3")) == 3
    with pytest.raises(ConfigError, match=r"trainer.devices=-1: give a count of processes >= 1 \(-1 means every GPU"):
        processes_per_machine(compose_cfg("trainer=ddp", "trainer.devices=-1"))


def test_a_task_started_by_srun_takes_its_own_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``srun`` each task has ``--cpus-per-task`` CPUs; they are not divided again among the tasks."""
    allowed = len(os.sched_getaffinity(0))
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert cores_per_process(2) == max(1, allowed // 2)  # Lightning starts both processes from this one
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert cores_per_process(4) == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP runs where CUDA is")
def test_fsdp_without_cuda_is_a_clear_error() -> None:
    cfg = compose_cfg("trainer=fsdp")
    assert cfg.trainer.strategy._target_ == "lightning.pytorch.strategies.FSDPStrategy"
    with pytest.raises(ConfigError, match=r"trainer.strategy=fsdp \(trainer=fsdp, experimental\): .*CUDA GPUs only.*trainer=ddp"):
        check_scale_out(cfg)


def test_rank_comes_from_the_launchers_variables(monkeypatch) -> None:
    for name in processes._RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert processes.global_rank() == 0 and processes.is_rank_zero()
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert processes.global_rank() == 3 and not processes.is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's launcher sets it for the ranks it starts
    assert processes.global_rank() == 1


def join_gloo_group(tmp_path) -> None:
    """This process as the one rank of a gloo group (the backend ``trainer=ddp`` uses on CPUs)."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert torch.distributed.is_initialized()


@pytest.mark.parametrize("ends", ["finished", "failed on a rank other than 0"])
def test_a_job_leaves_its_process_group_before_python_exits(monkeypatch, tmp_path, ends: str) -> None:
    """A gloo group left to the interpreter's shutdown can abort a rank after the job finished (SIGABRT)."""
    from omegaconf import OmegaConf

    import kd.job

    def train(cfg) -> dict:
        join_gloo_group(tmp_path)
        if ends != "finished":
            raise RuntimeError("a rank failed")
        return {"val/acc_best": 0.5}

    monkeypatch.setattr(kd.job, "train", train)
    monkeypatch.setattr(kd.job, "describe_job", lambda cfg: False)
    monkeypatch.setattr(kd.job, "redact_argv", lambda: None)  # neither touches this test process's argv or logging
    monkeypatch.setattr(kd.job, "quiet_library_noise", lambda: None)
    monkeypatch.setattr(kd.job, "is_rank_zero", lambda: False)
    cfg = OmegaConf.create({"optimized_metric": "val/acc_best"})
    try:
        if ends == "finished":
            assert kd.job.run_job(cfg) == 0.5
        else:
            with pytest.raises(RuntimeError, match="a rank failed"):
                kd.job.run_job(cfg)
        assert not torch.distributed.is_initialized()
    finally:
        processes.leave_process_group()
    processes.leave_process_group()  # without a group: nothing to do
    assert not torch.distributed.is_initialized()


def test_other_ranks_wait_for_rank_zero_and_stop_when_it_failed(tmp_path) -> None:
    calls = iter([None, None, "built"])
    assert processes.wait_for_rank_zero(lambda: next(calls), "x", tmp_path / "failed.json", poll_s=0) == "built"
    failed = tmp_path / "failed.json"

    def rank_zero_fails() -> None:  # rank 0 records its failure while this rank waits
        failed.write_text("{}")

    with pytest.raises(RuntimeError, match="rank 0 failed while building the teacher"):
        processes.wait_for_rank_zero(rank_zero_fails, "the teacher", failed, poll_s=0)


def test_the_other_ranks_rerun_this_job_alone(monkeypatch, tmp_path) -> None:
    """In a multirun job, Lightning's command for ranks 1.. must be this job's overrides, in this job's folder."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["seed=1", "loss=kd"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "multirun/3")
        cfg.hydra.run.dir = "outputs/elsewhere"
    monkeypatch.setattr(sys, "argv", ["kd/run.py", "-m", "-cn", "train", "seed=0,1", "loss=kd"])
    HydraConfig.instance().set_config(cfg)
    try:
        processes.pin_worker_command()
        assert sys.argv == ["kd/run.py", "-cn", "train", "seed=1", "loss=kd", "hydra.mode=RUN"]
        assert HydraConfig.get().run.dir == str(tmp_path / "multirun/3")
    finally:
        HydraConfig.instance().cfg = None  # other tests run without Hydra's app state


def test_crd_is_refused_by_name_in_a_multi_process_job() -> None:
    """CRD's memory banks are buffers: DDP would copy rank 0's over every other process's updates."""
    from kd.training import build_loss

    cfg = compose_cfg("trainer=ddp", "loss=crd")
    with pytest.raises(ConfigError, match=r"loss.terms.crd \(ContrastiveRepresentation\) cannot train in 2 processes: "
                                          r"its memory banks are buffers.*trainer.devices=1"):
        check_scale_out(cfg, build_loss(cfg.loss))
    one = compose_cfg("loss=crd")
    check_scale_out(one, build_loss(one.loss))  # one process: allowed
    ddp_kd = compose_cfg("trainer=ddp", "loss=kd")
    check_scale_out(ddp_kd, build_loss(ddp_kd.loss))


def test_the_tasks_of_one_srun_step_share_one_run_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """``srun python -m kd.run trainer=ddp``: every task composes the config itself; the run folder must
    not come from each task's own clock."""
    for name in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)

    def run_dir() -> str:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return str(compose(config_name="train", return_hydra_config=True).hydra.run.dir)

    alone = run_dir()
    assert alone.startswith("outputs/runs/") and alone.count("/") == 3 and alone != run_dir()  # the time, to the µs
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    folders = set()
    for task in ("0", "1"):
        monkeypatch.setenv("SLURM_PROCID", task)
        folders.add(run_dir())
    assert folders == {"outputs/runs/slurm-4711/0"}
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # requeued: a new folder; resume=true finds the first
    assert run_dir() == "outputs/runs/slurm-4711/0.restart1"
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task (a plain sbatch job): its own time again
    assert run_dir() != "outputs/runs/slurm-4711/0"


def test_no_process_measures_whole_models_after_a_sharded_fit() -> None:
    """After an FSDP fit no process holds whole models: rank 0's deployment cost and generations would wait
    for the other processes' shards forever (they have gone on), so they are left to kd.export."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy

    from kd.launch.processes import SHARDED_NOT_MEASURED, sharded

    assert sharded(SimpleNamespace(strategy=FSDPStrategy()))
    assert not sharded(SimpleNamespace(strategy=DDPStrategy())) and not sharded(SimpleNamespace(strategy=SingleDeviceStrategy()))
    assert "python -m kd.export" in SHARDED_NOT_MEASURED
