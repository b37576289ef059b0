"""Data-parallel training over MPI (mpi4py, with the mpich wheel: pip install 'lamina[mpi]').

Every process (rank) holds a full copy of the model and trains on its own
shard of each batch; after backward, the gradients are averaged across ranks
in one Allreduce of a flat buffer, so every copy takes the same step.

    mpiexec -n 2 lamina train --distributed
    mpiexec -n 4 -f hosts python train.py        # several machines, one host name per line in `hosts`

Without mpi4py, or in a single process started without mpiexec, everything
here still works and does nothing: init() is a no-op, rank() is 0,
world_size() is 1.
"""

import math
import os
import sys
import time
import traceback

import numpy as np

from lamina import autograd
from lamina.backend import CPU, device_of, generator, to_device
from lamina.errors import LaminaError
from lamina.nn.module import Module

_comm = None


class DistributedError(LaminaError, RuntimeError):
    pass


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(f"distributed training needs mpi4py and an MPI library ({e}): "
                               "pip install 'lamina[mpi]'") from None
    return MPI


def available():
    """Whether mpi4py and its MPI library can be loaded."""
    try:
        _mpi()
    except DistributedError:
        return False
    return True


def init():
    """Join the MPI job (a no-op for a single process without mpi4py). Returns this process's rank.

    It also makes an uncaught exception on any rank abort the whole job, with its
    traceback shown, instead of leaving the other ranks waiting forever.
    """
    global _comm
    if _comm is not None:
        return rank()
    if not available():
        return 0
    MPI = _mpi()
    _comm = MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _share_cores(_comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size())
        previous = sys.excepthook

        def abort_all(kind, value, tb):
            sys.stderr.write(f"lamina.distributed: rank {_comm.Get_rank()} failed; stopping every rank\n")
            traceback.print_exception(kind, value, tb)
            sys.stderr.flush()
            _comm.Abort(1)
            previous(kind, value, tb)

        sys.excepthook = abort_all
    return rank()


def _share_cores(ranks_here):
    """Give each rank on this machine its share of the cores for BLAS, as torchrun does with OpenMP:
    two ranks each running BLAS on every core would fight over them."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(max(1, (os.cpu_count() or 1) // ranks_here))


def rank():
    return _comm.Get_rank() if _comm is not None else 0


def world_size():
    return _comm.Get_size() if _comm is not None else 1


def is_main():
    return rank() == 0


def barrier():
    if world_size() > 1:
        _comm.Barrier()


_OPS = ("sum", "mean", "max", "min")


def all_reduce(array, op="sum"):
    """Combine `array` across ranks in place (sum, mean, max or min) and return it."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, not {op!r}")
    if world_size() == 1:
        return array
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
        raise ValueError("all_reduce: needs a C-contiguous NumPy array to reduce in place")
    MPI = _mpi()
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    _comm.Allreduce(MPI.IN_PLACE, array, op=mpi_op)
    if op == "mean":
        array /= world_size()
    return array


def broadcast(array, root=0):
    """Overwrite `array` on every rank with root's copy, in place, and return it."""
    if world_size() > 1:
        _comm.Bcast(array, root=root)
    return array


def broadcast_object(value, root=0):
    """A small JSON-like value from root to every rank (settings, a run folder's name)."""
    return _comm.bcast(value, root=root) if world_size() > 1 else value


def _broadcast_into(t):
    """Rank 0's values of tensor `t` on every rank, sent through host memory when `t` lives on a GPU."""
    if device_of(t.array) is CPU:
        broadcast(t.array)
        return
    host = to_device(t.array, CPU)
    broadcast(host)
    t.array[...] = to_device(host, device_of(t.array))


class DistributedDataParallel(Module):
    """Wrap a model so that, after every backward, each parameter's gradient is the average over ranks.

    As in PyTorch: rank 0's weights are broadcast at construction, forward is the
    model's, and the gradients travel as one flat buffer per step (one Allreduce),
    not one message per parameter. Saving it saves the wrapped model, so a
    checkpoint of a distributed run loads in a single process.
    """

    wraps_module = True

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0
        for t in list(module.parameters()) + list(module.buffers()):
            _broadcast_into(t)
        self._queued = False

    def forward(self, *args, **kwargs):
        if world_size() > 1 and autograd.is_grad_enabled() and not self._queued:
            autograd.call_after_backward(self._average_gradients)
            self._queued = True
        return self.module(*args, **kwargs)

    def _average_gradients(self):
        self._queued = False
        params = list(self.module.parameters())
        # Every rank must send the same layout: a parameter without a gradient contributes zeros.
        sizes = [p.array.size for p in params]
        dtype = params[0].array.dtype
        flat = np.empty(sum(sizes), dtype=dtype)
        offset = 0
        for p, n in zip(params, sizes):  # MPI sends host memory: a GPU's gradients are copied through it
            flat[offset:offset + n] = 0 if p.grad is None else to_device(p.grad.array.reshape(-1), CPU)
            offset += n
        start = time.perf_counter()
        all_reduce(flat, "mean")
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        offset = 0
        for p, n in zip(params, sizes):
            grad = flat[offset:offset + n].reshape(p.shape)
            p.grad = autograd.wrap(to_device(grad, device_of(p.array)))  # on the CPU a view of the flat buffer
            offset += n

    @property
    def strategy(self):
        """What fit asks to share the work over ranks (None in a single process)."""
        return DataParallel() if world_size() > 1 else None

    def state_dict(self, prefix=""):
        return self.module.state_dict(prefix)

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict)


class DistributedSampler:
    """The indices of this rank's shard of a dataset, reshuffled every epoch the same way on every rank.

    The epoch's permutation is padded to a multiple of the world size by
    repeating its start, then rank r takes positions r, r + world, r + 2 world, ...
    Call set_epoch(e) before each epoch (fit does it).
    """

    def __init__(self, num_samples, shuffle=True, seed=None, num_replicas=None, rank_=None):
        self.num_samples, self.shuffle = int(num_samples), shuffle
        self.seed = int(generator().integers(2**31)) if seed is None else seed
        self.seed = broadcast_object(self.seed)
        self.num_replicas = world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_ is None else rank_
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return math.ceil(self.num_samples / self.num_replicas)

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = len(self) * self.num_replicas
        if total > len(order):
            order = np.concatenate([order, order[:total - len(order)]])
        return iter(order[self.rank::self.num_replicas].tolist())


class DataParallel:
    """fit's strategy over MPI ranks: each rank trains on its shard, logs are averaged, all stop together.

    Same four answers as lamina.training.SingleProcess; DistributedDataParallel hands it to fit.
    """

    @property
    def is_main(self):
        return is_main()

    def sampler(self, num_samples, shuffle):
        return DistributedSampler(num_samples, shuffle=shuffle)

    def reduce_logs(self, logs):
        """The epoch's loss and metrics, averaged over the ranks' shards."""
        if not logs:
            return logs
        keys = sorted(logs)
        averaged = all_reduce(np.array([logs[k] for k in keys], dtype=np.float64), "mean")
        return dict(zip(keys, averaged.tolist()))

    def agree_to_stop(self, stopping):
        """True on every rank if any rank wants to stop: otherwise the others would wait for it forever."""
        return all_reduce(np.array([float(stopping)]), "max")[0] > 0


__all__ = [
    "DataParallel",
    "DistributedDataParallel", "DistributedError", "DistributedSampler", "all_reduce", "available", "barrier",
    "broadcast", "broadcast_object", "init", "is_main", "rank", "world_size",
]
