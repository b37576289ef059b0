"""Shared timing helpers: lamina and PyTorch measured in one process, alternating, medians reported."""

import contextlib
import statistics
import time


def try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def threads(n, torch=None):
    """Limit BLAS (through threadpoolctl) and PyTorch to n threads; None leaves the defaults."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=n):
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(previous)


def alternate(runs, repeats):
    """Time each callable in `runs` (name -> fn) `repeats` times, alternating; return name -> seconds list."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
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
