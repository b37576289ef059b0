"""Data-parallel scaling: W1 (MLP 784-256-128-10, Adam, batch 128 per rank) on 1 rank and on 2 ranks.

Each rank uses one BLAS thread. Prints samples per second, the speed-up and
scaling efficiency of 2 ranks over 1, and the time per step spent in the
gradient Allreduce. Target: 2 ranks deliver at least 1.6x the samples per
second of 1 rank.

    python bench/distributed.py [--samples 60000] [--repeats 3]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(samples, repeats):
    from threadpoolctl import threadpool_limits

    import lamina
    import lamina.nn.functional as F
    from bench.workloads import _data, mlp
    from lamina import distributed

    distributed.init()
    threadpool_limits(1)  # one BLAS thread per rank, for both runs alike
    x, y = _data(samples)
    shard = distributed.DistributedSampler(samples, shuffle=False)
    index = list(shard)
    x, y = x[index], y[index]
    lamina.manual_seed(0)
    model = distributed.DistributedDataParallel(mlp(lamina.nn))
    opt = lamina.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        for start in range(0, len(x), 128):
            inputs, labels = lamina.from_numpy(x[start:start + 128]), lamina.from_numpy(y[start:start + 128])
            loss = F.cross_entropy(model(inputs), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()

    epoch()  # warm-up
    times, allreduce = [], []
    for _ in range(repeats):
        model.allreduce_seconds, model.allreduce_calls = 0.0, 0
        distributed.barrier()
        start = time.perf_counter()
        epoch()
        distributed.barrier()
        times.append(time.perf_counter() - start)
        allreduce.append(model.allreduce_seconds / max(model.allreduce_calls, 1))
    if distributed.is_main():
        seconds = statistics.median(times)
        print(json.dumps({"ranks": distributed.world_size(), "seconds": seconds, "samples_per_s": samples / seconds,
                          "allreduce_ms_per_step": 1e3 * statistics.median(allreduce),
                          "steps": -(-len(x) // 128)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.samples, args.repeats)
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("bench/distributed.py needs mpiexec: pip install 'lamina[mpi]'")
    results = {}
    for ranks in (1, 2):
        out = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker",
                              "--samples", str(args.samples), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout
        results[ranks] = json.loads(out.strip().splitlines()[-1])
        r = results[ranks]
        print(f"{ranks} rank{'s' if ranks > 1 else ' '}: {r['samples_per_s']:8.0f} samples/s "
              f"({r['seconds']:.2f} s for {args.samples:,} samples), allreduce {r['allreduce_ms_per_step']:.2f} ms "
              f"per step of {r['steps']}")
    speedup = results[2]["samples_per_s"] / results[1]["samples_per_s"]
    print(f"2 ranks / 1 rank: {speedup:.2f}x, scaling efficiency {speedup / 2:.0%} "
          f"(target >= 1.6x: {'ok' if speedup >= 1.6 else 'MISSED'})")


if __name__ == "__main__":
    main()
