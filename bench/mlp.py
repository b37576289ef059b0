"""W1: one epoch of an MLP 784-256-128-10 (ReLU, cross-entropy, Adam lr 1e-3, batch 128) on 60,000 samples.

lamina and PyTorch train the same model from the same initial weights on the
same synthetic data of MNIST's shape, float32, alternating, at 1 thread and at
the machine's default thread count; medians and the ratio lamina/PyTorch.

    python bench/mlp.py [--repeats 3] [--samples 60000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lamina  # noqa: E402
import lamina.nn as nn  # noqa: E402
import lamina.nn.functional as F  # noqa: E402
from bench.common import alternate, blas_description, matmul_ceiling, report, threads, try_import_torch  # noqa: E402

MACS = 784 * 256 + 256 * 128 + 128 * 10
# forward 2 FLOP per multiply-add, weight gradients 2, input gradients 2 (none for the first layer)
FLOP_PER_SAMPLE = 6 * MACS - 2 * 784 * 256


def make_data(samples, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, 784), dtype=np.float32), rng.integers(0, 10, samples)


def lamina_model():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def train_lamina(model, x, y, batch=128):
    opt = lamina.optim.Adam(model.parameters(), lr=1e-3)
    for start in range(0, len(x), batch):
        xb, yb = lamina.Tensor(x[start:start + batch]), lamina.Tensor(y[start:start + batch])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def train_torch(torch, model, x, y, batch=128):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(x), batch):
        loss = torch.nn.functional.cross_entropy(model(x[start:start + batch]), y[start:start + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60_000)
    args = parser.parse_args(argv)
    torch = try_import_torch()
    x, y = make_data(args.samples)
    template = lamina_model()
    weights = {k: v.numpy().copy() for k, v in template.state_dict().items()}

    def fresh_lamina():
        model = lamina_model()
        model.load_state_dict(weights)
        return model

    def fresh_torch():
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                    torch.nn.ReLU(), torch.nn.Linear(128, 10))
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        return model

    runs = {"lamina": lambda: train_lamina(fresh_lamina(), x, y)}
    if torch:
        runs["torch"] = lambda: train_torch(torch, fresh_torch(), x, y)
    flop = FLOP_PER_SAMPLE * args.samples
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
