"""Every benchmark workload, lamina against PyTorch in one process, at 1 thread and the default count.

    python -m bench [--repeats 3] [--only W1,W2] [--json bench-results.json] [--clock cpu] [--fresh]
    python -m bench --device cuda [--only W1]    (W1 and W2 on a GPU against PyTorch CUDA eager)

Prints a table of medians, the ratio lamina/PyTorch against each target, the
achieved fraction of the measured float32 matrix-product ceiling, the floor (the
ratio if lamina's matrix products ran at that ceiling and took all the time), W1 through
model.fit against the hand-written loop, and peak memory while training W2
(each framework alone in a fresh process). Writes everything as JSON.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import lamina
from bench import common, workloads
from bench.common import alternate, blas_description, matmul_ceiling, threads, try_import_torch
from bench.workloads import WORKLOADS, lamina_fit

THREADS = {"1 thread": 1, "default threads": None}


def _median(values):
    return statistics.median(values)


def run_workloads(torch, repeats, only):
    rows = []
    for label, count in THREADS.items():
        with threads(count, torch):
            ceiling = matmul_ceiling()
            print(f"\n{label}: float32 matrix-product ceiling {ceiling / 1e9:.0f} GFLOP/s (1024^3)")
            print(f"{'workload':<6} {'lamina s':>10} {'torch s':>10} {'ratio':>7} {'target':>7} {'ceiling':>8} "
                  f"{'floor':>6}")
            for w in WORKLOADS:
                if only and w.name not in only:
                    continue
                runs = {"lamina": w.lamina()}
                if torch:
                    runs["torch"] = w.torch(torch)
                for fn in runs.values():
                    fn()  # warm-up
                times = alternate(runs, repeats)
                ours = _median(times["lamina"])
                theirs = _median(times["torch"]) if torch else None
                ratio = ours / theirs if theirs else None
                target = w.targets.get(label)
                fraction = w.flop / ours / ceiling
                # The ratio lamina would reach if its matrix products ran at the ceiling and nothing else took
                # time: a target below it cannot be met on this machine against this PyTorch.
                floor = w.flop / ceiling / theirs if theirs else None
                verdict = "" if target is None or ratio is None else (
                    "ok" if ratio <= target else "MISSED" + (" (target below the floor)" if floor > target else ""))
                print(f"{w.name:<6} {ours:>10.3f} {theirs if theirs else float('nan'):>10.3f} "
                      f"{ratio if ratio else float('nan'):>7.3f} {target if target else '':>7} {fraction:>7.0%}  "
                      f"{floor if floor else float('nan'):>6.2f}  {verdict}")
                rows.append({"workload": w.name, "description": w.description, "threads": label,
                             "lamina_s": times["lamina"], "torch_s": times.get("torch"), "lamina_median_s": ours,
                             "torch_median_s": theirs, "ratio": ratio, "target": target,
                             "ceiling_gflops": ceiling / 1e9, "fraction_of_ceiling": fraction,
                             "floor_ratio": floor})
    return rows


def fit_overhead(repeats):
    from bench.workloads import lamina_training, mlp

    with threads(1):
        runs = {"fit": lamina_fit(), "loop": lamina_training(mlp, 60_000, False)}
        for fn in runs.values():
            fn()
        times = alternate(runs, repeats)
    extra = _median(times["fit"]) / _median(times["loop"]) - 1
    print(f"\nW1 through model.fit (no progress bar) against the hand-written loop, 1 thread: {extra:+.1%} "
          f"(target at most +5%: {'ok' if extra <= 0.05 else 'MISSED'})")
    return {"fit_s": times["fit"], "loop_s": times["loop"], "extra": extra}


_MEMORY_PROBE = """
import sys
sys.path.insert(0, {root!r})


def high_water_kib():  # this process's peak resident set (VmHWM; ru_maxrss would include the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


from bench.workloads import lamina_training, torch_training, cnn
if {framework!r} == "torch":
    import torch
    torch.set_num_threads(1)
    run = torch_training(torch, cnn, 10_000, True)
else:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    run = lamina_training(cnn, 10_000, True)
before = high_water_kib()
run()
print(before, high_water_kib())
"""


def peak_memory(torch):
    """Peak resident memory of W2's training, each framework alone in a fresh process (KiB, Linux)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = {}
    for framework in ("lamina", "torch") if torch else ("lamina",):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE.format(root=root, framework=framework)],
                             capture_output=True, text=True, check=True).stdout.split()
        before, after = int(out[0]), int(out[1])
        result[framework] = {"before_kib": before, "peak_kib": after, "training_kib": after - before}
    line = "\nPeak memory training W2 (fresh process each): " + ", ".join(
        f"{k} {v['peak_kib'] / 1024:.0f} MiB peak ({v['training_kib'] / 1024:+.0f} MiB over its setup)"
        for k, v in result.items())
    print(line)
    if torch:
        ratio = result["lamina"]["peak_kib"] / result["torch"]["peak_kib"]
        growth = result["lamina"]["training_kib"] / max(result["torch"]["training_kib"], 1)
        # issue 11: "Peak memory stays <= 0.5x PyTorch's on W2" (Numba's import alone is about 124 MiB of it)
        print(f"  ratio of peaks lamina/torch {ratio:.2f} (target <= 0.5: {'ok' if ratio <= 0.5 else 'MISSED'}); "
              f"ratio of growth during training {growth:.2f}")
        result["peak_ratio"], result["growth_ratio"] = ratio, growth
    return result


def cpu_model():
    """The CPU's model name as lscpu shows it (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated workload names, e.g. W1,W2")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--clock", choices=sorted(common.CLOCKS), default="wall",
                        help="wall time, or CPU time of this process (steadier on a loaded machine; at more than one "
                             "thread it counts every thread's time)")
    parser.add_argument("--fresh", action="store_true",
                        help="start the training workloads (W1, W2, W4, W5) from the initial weights every repeat "
                             "instead of continuing training")
    parser.add_argument("--no-flush-denormal", action="store_true",
                        help="keep subnormal floats (lamina.set_flush_denormal(False)) to measure what flushing saves")
    parser.add_argument("--device", default="cpu", help="cpu (every workload) or cuda (W1 and W2 on a GPU)")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        return gpu_main(args)
    common.clock = common.CLOCKS[args.clock]
    workloads.FRESH = args.fresh
    if args.no_flush_denormal:
        lamina.set_flush_denormal(False)
    torch = try_import_torch()
    only = set(args.only.split(",")) if args.only else None
    print(f"lamina benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {len(os.sched_getaffinity(0))} "
          f"CPUs; {blas_description()}; lamina kernels {lamina.get_kernels()}, {lamina.get_num_threads()} threads by "
          f"default; PyTorch {torch.__version__ if torch else 'not installed'}; {args.clock} clock, "
          f"{'fresh' if args.fresh else 'steady-state'} training")
    report = {"machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "blas": blas_description(),
                          "python": platform.python_version(), "torch": torch.__version__ if torch else None,
                          "kernels": lamina.get_kernels(), "threads": lamina.get_num_threads(),
                          "clock": args.clock, "fresh": args.fresh}}
    report["workloads"] = run_workloads(torch, args.repeats, only)
    if not only or "W1" in only:
        report["fit_overhead"] = fit_overhead(args.repeats)
    if not args.skip_memory and (not only or "W2" in only):
        report["peak_memory"] = peak_memory(torch)
    report["max_rss_kib_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.json}")


def gpu_main(args):
    from bench.gpu import run_gpu

    torch = try_import_torch()
    if torch is None or not torch.cuda.is_available() or not lamina.cuda.is_available():
        raise SystemExit("python -m bench --device cuda needs a GPU that both PyTorch and CuPy see")
    print(f"lamina GPU benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, host {cpu_model()}")
    only = set(args.only.split(",")) if args.only else None
    report = {"machine": {"cpu_model": cpu_model(), "gpu": lamina.cuda.get_device_name(),
                          "torch": torch.__version__}, "gpu_workloads": run_gpu(torch, args.repeats, only)}
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
