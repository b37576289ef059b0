"""Shared timing helpers: lamina and PyTorch measured in one process, alternating, medians reported."""

import contextlib
import os
import statistics
import time

import numpy as np


def try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def threads(n, torch=None):
    """Limit BLAS (through threadpoolctl), lamina's compiled kernels and PyTorch to n threads; None leaves the
    defaults."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    import lamina

    previous = torch.get_num_threads() if torch else None
    ours = lamina.get_num_threads()
    with threadpool_limits(limits=n):
        lamina.set_num_threads(n)  # after threadpoolctl, which it sets to the same n
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            lamina.set_num_threads(ours)
            if torch:
                torch.set_num_threads(previous)


# What alternate() measures: wall time, or this process's CPU time (all its threads together), which other
# programs on a loaded machine disturb far less; at one thread the two agree on an idle machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def alternate(runs, repeats):
    """Time each callable in `runs` (name -> fn) `repeats` times, alternating; return name -> seconds list."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def report(title, times, baseline="torch", target=None):
    """Print each median and the ratio against the baseline; return the ratio (or None)."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(title)
    for name, m in medians.items():
        print(f"  {name:>8}: median {m * 1e3:9.1f} ms over {len(times[name])} runs")
    if baseline not in medians:
        print("  (PyTorch not importable: no ratio)")
        return None
    ratio = medians["lamina"] / medians[baseline]
    verdict = "" if target is None else ("  [meets target]" if ratio <= target else f"  [target <= {target}: MISSED]")
    print(f"  ratio lamina/{baseline}: {ratio:.3f}{verdict}")
    return ratio


def blas_description():
    """Which BLAS NumPy uses, with its kernel, and whether OPENBLAS_CORETYPE pins an older one."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (threadpoolctl not installed)"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "BLAS: none found"
    info = infos[0]
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    note = f" (pinned by OPENBLAS_CORETYPE={pinned})" if pinned else ""
    return f"BLAS: {info['internal_api']} {info.get('version')}, kernel {info.get('architecture')}{note}"


def matmul_ceiling(n=1024, repeats=5):
    """Measured float32 matrix-product FLOP/s at the current thread limit: the ceiling for BLAS-bound work."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
