"""The benchmark workloads, each in lamina and in PyTorch, on synthetic float32 data of MNIST's shape.

Each workload gives a setup for either framework that returns a callable running
it once from the same initial weights; `flop` is the multiply-add work counted
at 2 FLOP each, for the achieved fraction of the matrix-product ceiling.
"""

from dataclasses import dataclass

import numpy as np

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from bench.overhead import make_problem
from bench.overhead import train_lamina as w3_lamina
from bench.overhead import train_torch as w3_torch

MLP_MACS = 784 * 256 + 256 * 128 + 128 * 10
# A convolution of C in, O out, k x k, on an H x W output does H W O C k^2 multiply-adds.
CNN_MACS = 26 * 26 * 32 * 1 * 9 + 11 * 11 * 64 * 32 * 9 + 1600 * 128 + 128 * 10
CNN_FIRST_LAYER_MACS = 26 * 26 * 32 * 9  # it needs no input gradient


@dataclass
class Workload:
    name: str
    description: str
    flop: float
    lamina: object  # () -> callable
    torch: object  # (torch) -> callable
    targets: dict  # threads label -> largest acceptable ratio lamina / PyTorch


def _data(samples, image=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (samples, 1, 28, 28) if image else (samples, 784)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, samples)


def mlp(module):
    return module.Sequential(module.Linear(784, 256), module.ReLU(), module.Linear(256, 128), module.ReLU(),
                             module.Linear(128, 10))


def cnn(module):
    return module.Sequential(module.Conv2d(1, 32, 3), module.ReLU(), module.MaxPool2d(2), module.Conv2d(32, 64, 3),
                             module.ReLU(), module.MaxPool2d(2), module.Flatten(), module.Linear(1600, 128),
                             module.ReLU(), module.Linear(128, 10))


def _weights(build):
    lamina.manual_seed(0)
    return {k: v.numpy().copy() for k, v in build(nn).state_dict().items()}


def _lamina_model(build, weights):
    model = build(nn)
    model.load_state_dict(weights)
    return model


def _torch_model(torch, build, weights):
    model = build(torch.nn)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model


def lamina_training(build, samples, image, batch=128):
    x, y = _data(samples, image)
    weights = _weights(build)

    def run():
        model = _lamina_model(build, weights)
        opt = lamina.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, samples, batch):
            loss = F.cross_entropy(model(lamina.Tensor(x[start:start + batch])), lamina.Tensor(y[start:start + batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def torch_training(torch, build, samples, image, batch=128):
    x, y = _data(samples, image)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    weights = _weights(build)

    def run():
        model = _torch_model(torch, build, weights)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, samples, batch):
            loss = torch.nn.functional.cross_entropy(model(x[start:start + batch]), y[start:start + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def lamina_fit(samples=60_000, batch=128):
    x, y = _data(samples)
    weights = _weights(mlp)

    def run():
        model = _lamina_model(mlp, weights)
        model.compile(lamina.optim.Adam(model.parameters(), lr=1e-3), "cross_entropy")
        history = model.fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        return history.history["loss"][-1]

    return run


def lamina_inference(samples=10_000, batch=1000):
    x, _ = _data(samples)
    model = _lamina_model(mlp, _weights(mlp)).eval()

    def run():
        with lamina.no_grad():
            return sum(float(model(lamina.Tensor(x[i:i + batch])).data[0, 0]) for i in range(0, samples, batch))

    return run


def torch_inference(torch, samples=10_000, batch=1000):
    x, _ = _data(samples)
    x = torch.from_numpy(x)
    model = _torch_model(torch, mlp, _weights(mlp)).eval()

    def run():
        with torch.inference_mode():
            return sum(float(model(x[i:i + batch])[0, 0]) for i in range(0, samples, batch))

    return run


def _w3(framework, torch=None):
    x, y, weights = make_problem()
    if framework == "lamina":
        return lambda: w3_lamina(x, y, weights, 1000)
    return lambda: w3_torch(torch, x, y, weights, 1000)


WORKLOADS = [
    Workload("W1", "MLP 784-256-128-10, Adam, batch 128, 60,000 samples",
             2 * (3 * MLP_MACS - 784 * 256) * 60_000,
             lambda: lamina_training(mlp, 60_000, False), lambda torch: torch_training(torch, mlp, 60_000, False),
             {"1 thread": 0.7}),
    Workload("W2", "CNN (conv 32, pool, conv 64, pool, 128, 10), Adam, batch 128, 10,000 samples",
             2 * (3 * CNN_MACS - CNN_FIRST_LAYER_MACS) * 10_000,
             lambda: lamina_training(cnn, 10_000, True), lambda torch: torch_training(torch, cnn, 10_000, True),
             {"1 thread": 0.8, "default threads": 1.0}),
    Workload("W3", "2-16-16-1 tanh, 1,000 full-batch SGD steps on 1,000 points",
             2 * 3 * (2 * 16 + 16 * 16 + 16) * 1000 * 1000,
             lambda: _w3("lamina"), lambda torch: _w3("torch", torch), {"1 thread": 0.6}),
    Workload("INF", "W1's model, inference on 10,000 samples in batches of 1,000",
             2 * MLP_MACS * 10_000, lamina_inference, torch_inference, {"1 thread": 0.9}),
]
