"""W1 alone: one epoch of an MLP 784-256-128-10 (ReLU, cross-entropy, Adam lr 1e-3, batch 128), 60,000 samples.

lamina and PyTorch train the same model from the same initial weights on the
same synthetic data of MNIST's shape, float32, alternating, at 1 thread and at
the machine's default thread count; medians and the ratio lamina/PyTorch.
`python -m bench` runs this with the other workloads.

    python bench/mlp.py [--repeats 3] [--samples 60000]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import alternate, blas_description, matmul_ceiling, report, threads, try_import_torch  # noqa: E402
from bench.workloads import MLP_MACS, lamina_training, mlp, torch_training  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60_000)
    args = parser.parse_args(argv)
    torch = try_import_torch()
    runs = {"lamina": lamina_training(mlp, args.samples, False)}
    if torch:
        runs["torch"] = torch_training(torch, mlp, args.samples, False)
    # forward 2 FLOP per multiply-add, weight gradients 2, input gradients 2 (none for the first layer)
    flop = 2 * (3 * MLP_MACS - 784 * 256) * args.samples
    print(blas_description())
    for n_threads, target in ((1, 0.8), (None, None)):
        label = "1 thread" if n_threads == 1 else "default threads"
        with threads(n_threads, torch):
            ceiling = matmul_ceiling()
            final = {name: fn() for name, fn in runs.items()}
            times = alternate(runs, args.repeats)
        print("final loss: " + ", ".join(f"{name} {value:.4f}" for name, value in final.items()))
        report(f"W1 MLP 784-256-128-10, Adam, batch 128, {args.samples:,} samples, {label}", times, target=target)
        lamina_seconds = sorted(times["lamina"])[len(times["lamina"]) // 2]
        print(f"  lamina: {flop / lamina_seconds / 1e9:.1f} GFLOP/s = {flop / lamina_seconds / ceiling:.0%} of the "
              f"measured matrix-product ceiling ({ceiling / 1e9:.0f} GFLOP/s, 1024^3 float32)")


if __name__ == "__main__":
    main()
