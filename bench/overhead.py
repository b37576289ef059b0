"""Per-op overhead: 1,000 full-batch SGD steps of a 2-16-16-1 tanh network on 1,000 points.

The matrices are tiny, so the time is almost all framework overhead: graph
recording, the backward walk, Python calls. lamina runs with BLAS at one
thread and PyTorch with torch.set_num_threads(1), alternating, several repeats.

    python bench/overhead.py [--steps 1000] [--repeats 5]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lamina  # noqa: E402
from bench.common import alternate, blas_description, report, threads, try_import_torch  # noqa: E402

LR = 0.1


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1000, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:] > 0).astype(np.float32)  # XOR of the signs: needs the hidden layers
    sizes = [2, 16, 16, 1]
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, np.float32))
    return x, y, weights


def train_lamina(x, y, weights, steps):
    x, y = lamina.tensor(x), lamina.tensor(y)
    params = [lamina.tensor(w, requires_grad=True) for w in weights]
    w1, b1, w2, b2, w3, b3 = params
    for _ in range(steps):
        h = (x @ w1 + b1).tanh()
        h = (h @ w2 + b2).tanh()
        loss = lamina.binary_cross_entropy_with_logits(h @ w3 + b3, y)
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.array -= LR * p.grad.array
    return loss.item()


def train_torch(torch, x, y, weights, steps):
    F = torch.nn.functional
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    w1, b1, w2, b2, w3, b3 = params
    optimizer = torch.optim.SGD(params, lr=LR)
    for _ in range(steps):
        h = torch.tanh(x @ w1 + b1)
        h = torch.tanh(h @ w2 + b2)
        loss = F.binary_cross_entropy_with_logits(h @ w3 + b3, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch = try_import_torch()
    x, y, weights = make_problem()
    runs = {"lamina": lambda: train_lamina(x, y, weights, args.steps)}
    if torch:
        runs["torch"] = lambda: train_torch(torch, x, y, weights, args.steps)
    print(blas_description())
    with threads(1, torch):
        final = {name: fn() for name, fn in runs.items()}  # warm-up, and a check that both learn the same
        print("final loss: " + ", ".join(f"{name} {value:.5f}" for name, value in final.items()))
        times = alternate(runs, args.repeats)
    report(f"overhead: 2-16-16-1 tanh, {args.steps} full-batch SGD steps on 1,000 points, 1 thread", times, target=0.7)


if __name__ == "__main__":
    main()
