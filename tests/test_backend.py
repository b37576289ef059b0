"""The CPU settings in lamina.backend: flushing subnormal floats, the thread count, the kernel path."""

import sys
import threading

import numpy as np
import pytest

import lamina
from lamina import backend

flush_supported = backend._libm() is not None
needs_flush = pytest.mark.skipif(not flush_supported, reason="flush-to-zero is set only on x86-64 Linux with glibc")


def subnormal():
    """1e-39 as float32, built from its bits: converting the Python float would itself be flushed."""
    return np.array([0x000AE398], np.uint32).view(np.float32)


def flushed_here():
    """Whether this thread's arithmetic flushes: a subnormal input (DAZ) and a subnormal result (FTZ)."""
    tiny = subnormal() * np.float32(1)
    product = np.array([1e-20], np.float32) * np.array([1e-20], np.float32)
    return bool(tiny[0] == 0 and product[0] == 0), bool(tiny[0] != 0 and product[0] != 0)


@pytest.fixture
def restore_flush():
    yield
    backend.set_flush_denormal(True)  # lamina's default, set at import


@needs_flush
def test_flush_denormal_is_on_after_import_and_switches_both_ways(restore_flush):
    assert backend.flush_denormal()
    assert flushed_here() == (True, False)
    assert lamina.set_flush_denormal(False) is True
    assert flushed_here() == (False, True)  # gradual underflow is back: 1e-39 and 1e-40 survive
    assert not backend.flush_denormal()
    assert lamina.set_flush_denormal(True) is True
    assert flushed_here() == (True, False)


@needs_flush
def test_threads_started_after_the_call_inherit_the_setting(restore_flush):
    for mode in (False, True):
        lamina.set_flush_denormal(mode)
        seen = []
        worker = threading.Thread(target=lambda seen=seen: seen.append(flushed_here()))
        worker.start()
        worker.join()
        assert seen == [(mode, not mode)]


def test_flush_denormal_reports_false_where_unsupported(monkeypatch, restore_flush):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert lamina.set_flush_denormal(True) is False
    assert backend.flush_denormal() is False


@needs_flush
@pytest.mark.parametrize("flush", [True, False])
def test_adam_state_holds_zeros_not_subnormals_when_flushing(flush, restore_flush):
    # The effect behind the speed: (1 - beta2) g^2 = 1e-43 is subnormal, and each later pass over it is slow.
    lamina.set_flush_denormal(flush)
    w = lamina.nn.Parameter(lamina.ones(1000))
    opt = lamina.optim.Adam([w], lr=1e-3)
    w.grad = lamina.Tensor(np.full(1000, 1e-20, np.float32))
    opt.step()
    v = opt.state[w]["exp_avg_sq"]
    assert v.dtype == np.float32
    assert (v == 0).all() if flush else (v > 0).all()


def test_num_threads_defaults_to_the_cores_available_and_limits_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = lamina.get_num_threads()
    assert before == len(__import__("os").sched_getaffinity(0))
    try:
        lamina.set_num_threads(1)
        assert lamina.get_num_threads() == 1
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    finally:
        lamina.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises((ValueError, TypeError), match="set_num_threads"):
        lamina.set_num_threads(bad)


def test_set_kernels_names_the_choices():
    with pytest.raises(ValueError, match="set_kernels: expected one of"):
        lamina.set_kernels("fortran")
