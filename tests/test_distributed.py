"""Data-parallel training over MPI: single-process behaviour here, two ranks under mpiexec."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import cli, distributed

JOBS = Path(__file__).resolve().parent / "mpi_jobs"


def _mpiexec():
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None or not distributed.available():
        pytest.skip("needs mpi4py and mpiexec: pip install 'lamina[mpi]'")
    return found


def test_single_process_is_a_world_of_one():
    assert distributed.init() == 0 and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main()
    a = np.arange(3.0)
    assert distributed.all_reduce(a, "mean") is a and a.tolist() == [0.0, 1.0, 2.0]
    distributed.barrier()
    model = distributed.DistributedDataParallel(nn.Linear(3, 2))
    model(lamina.ones(4, 3)).sum().backward()
    assert model.module.weight.grad is not None
    assert list(model.state_dict()) == ["weight", "bias"]  # no "module." prefix: loads without the wrapper


def test_sampler_shards_interleave_and_cover_everything():
    shards = [list(distributed.DistributedSampler(10, seed=4, num_replicas=3, rank_=r)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(shards[0] + shards[1] + shards[2]) == set(range(10))
    sampler = distributed.DistributedSampler(10, seed=4, num_replicas=1, rank_=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(first) == list(range(10)) and list(sampler) != first


def test_distributed_flag_without_mpi_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(distributed, "available", lambda: False)
    assert cli.main(["train", "--distributed", "--dataset", "moons"]) == 2
    assert "pip install 'lamina[mpi]'" in capsys.readouterr().err


def test_two_ranks_equal_one_process_with_twice_the_batch():
    result = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(JOBS / "equivalence.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "world 2" in result.stdout


def test_a_failing_rank_stops_the_whole_job():
    start = time.monotonic()
    result = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(JOBS / "failing_rank.py")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "rank one broke on purpose" in result.stderr and "rank 1 failed" in result.stderr
    assert "did not stop" not in result.stdout
    assert time.monotonic() - start < 60


def test_lamina_train_distributed_writes_a_checkpoint_that_loads_in_one_process(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "lamina", "train", "--distributed",
                             "--dataset", "circles", "--epochs", "5", "--out", str(out), "--verbose", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Epoch 5/5") == 1  # progress from rank 0 only
    assert "on 2 ranks" in result.stdout
    model = lamina.load(out / "model.npz")
    state = lamina.load_checkpoint(out / "checkpoint.npz")
    assert state["epoch"] == 5 and isinstance(model, nn.Sequential)
