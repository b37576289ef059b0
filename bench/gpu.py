"""W1 and W2 on a GPU: lamina on CuPy against PyTorch CUDA eager, in one process (python -m bench --device cuda).

The data lives on the GPU for both frameworks (as a user moves a dataset there once); each run is one pass of
training continuing the same model (steady state) and ends by synchronizing the device, so the clock reads
finished work. Each lever is a column of its own: lamina with its fused CuPy kernels off (the NumPy-reference
code running on CuPy), on, and with forward and backward replayed from a CUDA graph (lamina.training.GraphedStep).
"""

import statistics
import time

import lamina
import lamina.nn.functional as F
from bench.workloads import _data, _lamina_model, _torch_model, _weights, cnn, mlp

GPU_WORKLOADS = {"W1": (mlp, 60_000, False), "W2": (cnn, 10_000, True)}


def lamina_run(build, samples, image, batch, graphed=False):
    x, y = _data(samples, image)
    xs, ys = lamina.from_numpy(x).to("cuda"), lamina.from_numpy(y).to("cuda")
    model = _lamina_model(build, _weights(build)).to("cuda")
    opt = lamina.optim.Adam(model.parameters(), lr=1e-3)
    step = lamina.training.GraphedStep(model, F.cross_entropy)

    def run():
        for start in range(0, samples, batch):
            if graphed:  # forward and backward replayed from a CUDA graph, the optimizer's step eager
                loss = step(xs[start:start + batch], ys[start:start + batch])
            else:
                loss = F.cross_entropy(model(xs[start:start + batch]), ys[start:start + batch])
                opt.zero_grad()
                loss.backward()
            opt.step()
        lamina.cuda.synchronize()
        return loss.item()

    return run


def torch_run(torch, build, samples, image, batch):
    x, y = _data(samples, image)
    xs, ys = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    model = _torch_model(torch, build, _weights(build)).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        for start in range(0, samples, batch):
            loss = torch.nn.functional.cross_entropy(model(xs[start:start + batch]), ys[start:start + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        return loss.item()

    return run


def _timed(fn, repeats):
    fn()  # warm-up: kernels compiled, memory pools filled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_gpu(torch, repeats, only=None, batches=(128, 512)):
    """Print and return the GPU table: each workload and batch size, lamina's levers against PyTorch."""
    print(f"\nGPU: {lamina.cuda.get_device_name()}; PyTorch {torch.__version__}, CuPy "
          f"{lamina.backend.cuda_module().__version__}")
    print(f"{'workload':<8} {'batch':>5} {'reference kernels s':>20} {'fused s':>8} {'+ graph s':>9} {'torch s':>8} "
          f"{'ratio':>6} {'graph ratio':>11} {'target':>6}")
    rows = []
    kernels = lamina.get_kernels()
    for name, (build, samples, image) in GPU_WORKLOADS.items():
        if only and name not in only:
            continue
        for batch in batches:
            lamina.set_kernels("numpy")
            plain = _timed(lamina_run(build, samples, image, batch), repeats)
            lamina.set_kernels(kernels)
            ours = _timed(lamina_run(build, samples, image, batch), repeats)
            try:
                graphed = _timed(lamina_run(build, samples, image, batch, graphed=True), repeats)
            except RuntimeError as e:  # a capture that failed: say why, keep the other columns
                print(f"  {name} batch {batch}: no CUDA graph: {e}")
                graphed = float("nan")
            theirs = _timed(torch_run(torch, build, samples, image, batch), repeats)
            ratio, graph_ratio = ours / theirs, graphed / theirs
            print(f"{name:<8} {batch:>5} {plain:>20.3f} {ours:>8.3f} {graphed:>9.3f} {theirs:>8.3f} {ratio:>6.2f} "
                  f"{graph_ratio:>11.2f} {1.0:>6} {'ok' if min(ratio, graph_ratio) <= 1.0 else 'MISSED'}")
            rows.append({"workload": name, "batch": batch, "lamina_reference_kernels_s": plain, "lamina_s": ours,
                         "lamina_graphed_s": graphed, "torch_s": theirs, "ratio": ratio,
                         "graphed_ratio": graph_ratio, "target": 1.0})
    return rows

