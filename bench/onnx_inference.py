"""Inference: lamina against ONNX Runtime running lamina's own ONNX export of the same model.

The benchmarks' MLP (784-256-128-10) and CNN (conv 32, pool, conv 64, pool, dense 128), float32, exported
once with a dynamic batch axis; each batch size is timed in both, alternating, at 1 thread (BLAS limited
by threadpoolctl, ONNX Runtime's intra-op pool set to 1) and at each one's default thread count. Prints the
CPU, the thread counts, milliseconds per batch (median over the repeats) and the ratio lamina / ONNX
Runtime (above 1: ONNX Runtime is faster). Needs the onnx and onnxruntime packages.

    python bench/onnx_inference.py [--repeats 5] [--batches 1,37,256] [--seconds 0.2] [--pause 0.3]
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lamina  # noqa: E402
import lamina.nn as nn  # noqa: E402
from bench.common import blas_description, threads  # noqa: E402
from bench.workloads import cnn, mlp  # noqa: E402

MODELS = {"MLP": (mlp, (784,)), "CNN": (cnn, (1, 28, 28))}


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def session(path, n_threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if n_threads is not None:
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def per_call(fn, seconds):
    """Calls of fn per timing, so that one timing lasts about `seconds`."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 4:
        fn()
        calls += 1
    return max(1, round(calls * seconds / (time.perf_counter() - start)))


def timed(fn, calls):
    """(wall seconds, CPU seconds of the whole process) per call."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,37,256")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timing")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="idle seconds before each timing at the default thread count")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    import onnxruntime as ort

    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs, {usable_cores()} usable by this process")
    if hasattr(os, "getloadavg"):
        print("load average before the run: {:.2f} {:.2f} {:.2f} (other work on the machine skews the timings)"
              .format(*os.getloadavg()))
    print(blas_description())
    print(f"lamina {lamina.__version__}, NumPy {np.__version__}, ONNX Runtime {ort.__version__} "
          "(CPUExecutionProvider; its default intra-op pool: one thread per physical core)")
    print(f"timings: median of {args.repeats} alternating repeats, each about {args.seconds} s of calls "
          f"(at the default thread count after {args.pause} s idle)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, shape) in MODELS.items():
            lamina.manual_seed(0)
            model = build(nn).eval()
            path = Path(tmp) / f"{name}.onnx"
            lamina.onnx.export(model, np.zeros((2, *shape), np.float32), path,
                               dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            for label, n_threads in (("1 thread", 1), ("default", None)):
                sess = session(path, n_threads)
                with threads(n_threads):
                    for batch in batches:
                        x = np.random.default_rng(batch).random((batch, *shape), dtype=np.float32)
                        tensor = lamina.tensor(x)

                        def run_lamina(tensor=tensor, model=model):
                            with lamina.no_grad():
                                return model(tensor).numpy()

                        def run_ort(x=x, sess=sess):
                            return sess.run(None, {"input": x})[0]

                        difference = float(np.abs(run_lamina() - run_ort()).max())
                        calls = {"lamina": per_call(run_lamina, args.seconds), "ort": per_call(run_ort, args.seconds)}
                        times = {"lamina": [], "ort": []}
                        for _ in range(args.repeats):
                            for key, fn in (("lamina", run_lamina), ("ort", run_ort)):
                                # idle first: each framework's helper threads spin for a while after a call
                                # (OpenBLAS's and ONNX Runtime's pools) and would slow the other one down
                                time.sleep(args.pause if n_threads is None else 0)
                                times[key].append(timed(fn, calls[key]))
                        lam, onnx_rt = (statistics.median(t[0] for t in times[k]) for k in ("lamina", "ort"))
                        lam_cpu, ort_cpu = (statistics.median(t[1] for t in times[k]) for k in ("lamina", "ort"))
                        rows.append((name, label, batch, lam, onnx_rt, lam_cpu, ort_cpu, difference))
    print("\nms per batch: wall clock, and CPU time of the process (at 1 thread, CPU time is what an idle core "
          "would take,\neven when other work shares the machine; at the default count it adds up every thread)")
    print(f"{'model':<5} {'threads':<9} {'batch':>5} {'lamina ms':>10} {'ORT ms':>9} {'lamina/ORT':>10} "
          f"{'lamina cpu':>10} {'ORT cpu':>9} {'cpu ratio':>9} {'lamina samples/s':>17} {'ORT samples/s':>14} "
          f"{'max |diff|':>10}")
    for name, label, batch, lam, onnx_rt, lam_cpu, ort_cpu, difference in rows:
        print(f"{name:<5} {label:<9} {batch:>5} {lam * 1e3:>10.3f} {onnx_rt * 1e3:>9.3f} {lam / onnx_rt:>10.2f} "
              f"{lam_cpu * 1e3:>10.3f} {ort_cpu * 1e3:>9.3f} {lam_cpu / ort_cpu:>9.2f} {batch / lam:>17,.0f} "
              f"{batch / onnx_rt:>14,.0f} {difference:>10.1e}")


if __name__ == "__main__":
    main()
