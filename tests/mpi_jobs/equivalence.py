"""Run under mpiexec -n 2: N steps of SGD with momentum, per-rank batch B, must equal one process with batch 2B.

Rank 0 then repeats the run alone, batch 2B over the same global order, and compares the weights.
"""

import sys

import numpy as np

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina import distributed
from lamina.data import DataLoader, TensorDataset

distributed.init()
B, STEPS_PER_EPOCH, EPOCHS, SEED = 8, 6, 2, 3
n = 2 * B * STEPS_PER_EPOCH
rng = np.random.default_rng(0)
x = rng.standard_normal((n, 5)).astype(np.float32)
y = rng.integers(0, 3, n)


def model():
    lamina.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def train(net, loader, set_epoch):
    opt = lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(EPOCHS):
        set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            opt.step()
    return net


sampler = distributed.DistributedSampler(n, shuffle=True, seed=SEED)
parallel = distributed.DistributedDataParallel(model())
train(parallel, DataLoader(TensorDataset(x, y), batch_size=B, sampler=sampler), sampler.set_epoch)
weights = {k: v.detach().numpy() for k, v in parallel.state_dict().items()}

if distributed.is_main():
    order = {}

    class GlobalOrder:  # the same permutation the sampler shards, unsharded
        def __init__(self):
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return n

        def __iter__(self):
            return iter(np.random.default_rng([SEED, self.epoch]).permutation(n).tolist())

    reference_order = GlobalOrder()
    single = train(model(), DataLoader(TensorDataset(x, y), batch_size=2 * B, sampler=reference_order),
                   reference_order.set_epoch)
    worst = max(float(np.abs(weights[k] - v.detach().numpy()).max()) for k, v in single.state_dict().items())
    print(f"world {distributed.world_size()}, largest weight difference {worst:.2e}")
    sys.exit(0 if worst <= 1e-5 and distributed.world_size() == 2 else 1)
