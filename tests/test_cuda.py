"""lamina on a real GPU (CuPy): skipped where none is usable, as in CI. The same plumbing is tested without a
GPU by tests/test_device_ops.py and tests/test_device_training.py through the CuPy stand-in.

Run on a GPU machine with `python -m pytest tests/test_cuda.py`.
"""

import copy

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina import backend

pytestmark = pytest.mark.skipif(not lamina.cuda.is_available(), reason="no usable CUDA GPU (CuPy)")

TOLERANCE = 1e-4


def _close(gpu_tensor, cpu_tensor, tolerance=TOLERANCE):
    assert gpu_tensor.is_cuda, "the result left the GPU"
    got, want = gpu_tensor.detach().cpu().numpy(), cpu_tensor.detach().numpy()
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * scale)


def _rand(*shape, seed=0):
    return lamina.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


LAYERS = {
    "Linear": (lambda: nn.Linear(6, 4), lambda: _rand(5, 6)),
    "MLP": (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), lambda: _rand(5, 6)),
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: _rand(2, 3, 8, 8)),
    "Conv2d+ReLU+MaxPool": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2)),
                            lambda: _rand(2, 2, 9, 9)),
    "Conv1d": (lambda: nn.Conv1d(3, 5, 3), lambda: _rand(2, 3, 10)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), lambda: _rand(4, 3, 5, 5)),
    "LayerNorm": (lambda: nn.LayerNorm(6), lambda: _rand(4, 6)),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), lambda: _rand(3, 4, 5)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), lambda: _rand(2, 3, 6, 6)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(1), lambda: _rand(2, 3, 6, 6)),
    "LSTM": (lambda: nn.LSTM(4, 6, num_layers=2, batch_first=True), lambda: _rand(3, 7, 4)),
    "LSTM bidirectional": (lambda: nn.LSTM(4, 5, bidirectional=True), lambda: _rand(7, 3, 4)),
    "GRU": (lambda: nn.GRU(4, 6, batch_first=True), lambda: _rand(3, 7, 4)),
    "RNN": (lambda: nn.RNN(4, 6), lambda: _rand(7, 3, 4)),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(8, 2, batch_first=True), lambda: _rand(2, 5, 8)),
    "TransformerEncoderLayer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                                lambda: _rand(2, 5, 8)),
    "GELU": (lambda: nn.GELU(), lambda: _rand(4, 5)),
    "Softmax": (lambda: nn.Softmax(dim=1), lambda: _rand(4, 5)),
    "Tanh+Sigmoid": (lambda: nn.Sequential(nn.Tanh(), nn.Sigmoid()), lambda: _rand(4, 5)),
}


def _first(output):
    while isinstance(output, tuple):
        output = output[0]
    return output


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_on_the_gpu_equals_the_cpu(name):
    build, make_input = LAYERS[name]
    lamina.manual_seed(0)
    cpu = build()
    gpu = copy.deepcopy(cpu).to("cuda")
    x_cpu = make_input().requires_grad_()
    x_gpu = x_cpu.detach().to("cuda").requires_grad_()
    if name == "MultiheadAttention":
        y_cpu, y_gpu = cpu(x_cpu, x_cpu, x_cpu)[0], gpu(x_gpu, x_gpu, x_gpu)[0]
    else:
        y_cpu, y_gpu = _first(cpu(x_cpu)), _first(gpu(x_gpu))
    _close(y_gpu, y_cpu)
    weights = lamina.from_numpy(np.random.default_rng(1).standard_normal(y_cpu.shape).astype(np.float32))
    (y_cpu * weights).sum().backward()
    (y_gpu * weights.to("cuda")).sum().backward()
    _close(x_gpu.grad, x_cpu.grad)
    for (key, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters()):
        assert p_gpu.grad is not None, key
        _close(p_gpu.grad, p_cpu.grad)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse_loss", "nll_loss", "binary_cross_entropy_with_logits"])
def test_losses_on_the_gpu_equal_the_cpu(loss):
    scores = _rand(6, 4).requires_grad_()
    classes = lamina.tensor([0, 1, 2, 3, 0, 1])
    target = {"cross_entropy": classes, "nll_loss": classes, "mse_loss": _rand(6, 4, seed=2),
              "binary_cross_entropy_with_logits": (_rand(6, 4, seed=3) > 0).float()}[loss]
    inputs = scores.log_softmax(1) if loss == "nll_loss" else scores
    value = getattr(F, loss)(inputs, target)
    scores_gpu = scores.detach().to("cuda").requires_grad_()
    inputs_gpu = scores_gpu.log_softmax(1) if loss == "nll_loss" else scores_gpu
    value_gpu = getattr(F, loss)(inputs_gpu, target.to("cuda"))
    _close(value_gpu, value)
    value.backward()
    value_gpu.backward()
    _close(scores_gpu.grad, scores.grad)


def test_ctc_loss_on_the_gpu_equals_the_cpu():
    logits = _rand(12, 2, 5).requires_grad_()
    targets, lengths = lamina.tensor([[1, 2, 2], [3, 4, 0]]), lamina.tensor([3, 2])
    frames = lamina.tensor([12, 10])
    loss = F.ctc_loss(logits.log_softmax(2), targets, frames, lengths)
    logits_gpu = logits.detach().cuda().requires_grad_()
    loss_gpu = F.ctc_loss(logits_gpu.log_softmax(2), targets.cuda(), frames.cuda(), lengths.cuda())
    _close(loss_gpu, loss)
    loss.backward()
    loss_gpu.backward()
    _close(logits_gpu.grad, logits.grad)


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_kernel_equals_the_reference(decoupled):
    from lamina import kernels

    cupy = backend.cuda_module()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(1000).astype(np.float32) for _ in range(3)]
    v = np.abs(rng.standard_normal(1000)).astype(np.float32)
    results = []
    for path in ("numpy", "numba"):
        param, grad, m = (cupy.asarray(a) for a in arrays)
        var = cupy.asarray(v)
        previous = backend.gpu_kernels()
        backend._gpu_kernels = path != "numpy"
        try:
            kernels.adam_step(param, grad, m, var, None, cupy.empty_like(param), 1e-3, 0.9, 0.999, 1e-8, 7, 0.01,
                              decoupled)
        finally:
            backend._gpu_kernels = previous
        results.append([a.get() for a in (param, m, var)])
    for reference, fused in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=1e-6, atol=1e-7)


def test_fused_relu_kernels_equal_the_reference():
    from lamina import kernels
    from lamina.kernels import reference

    cupy = backend.cuda_module()
    rng = np.random.default_rng(0)
    y = cupy.asarray(rng.standard_normal((64, 32)).astype(np.float32))
    bias = cupy.asarray(rng.standard_normal(32).astype(np.float32))
    g = cupy.asarray(rng.standard_normal((64, 32)).astype(np.float32))
    np.testing.assert_allclose(kernels.bias_relu_(y.copy(), bias).get(), reference.bias_relu_(y.copy(), bias).get())
    np.testing.assert_array_equal(kernels.relu_backward(g, y).get(), reference.relu_backward(g, y).get())


def test_numpy_of_a_gpu_tensor_raises_with_the_fix_and_mixing_devices_names_both():
    t = lamina.ones(3, device="cuda")
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        t.numpy()
    with pytest.raises(RuntimeError, match="cuda:0 and cpu|cpu and cuda:0"):
        t + lamina.ones(3)
    assert t.cpu().numpy().tolist() == [1, 1, 1] and repr(t) == "tensor([1., 1., 1.], device='cuda:0')"


def test_random_draws_and_creation_on_the_gpu():
    lamina.manual_seed(3)
    a = lamina.randn(1000, device="cuda")
    lamina.manual_seed(3)
    b = lamina.randn(1000, device="cuda")
    assert a.is_cuda and a.dtype == np.float32 and (a == b).all().item()
    assert abs(a.mean().item()) < 0.15 and 0.85 < a.std().item() < 1.15
    assert lamina.zeros_like(a).is_cuda and lamina.arange(5, device="cuda").tolist() == [0, 1, 2, 3, 4]
    drop = nn.Dropout(0.5).to("cuda")
    kept = drop(lamina.ones(10_000, device="cuda"))
    assert kept.is_cuda and 0.4 < (kept > 0).float().mean().item() < 0.6


def _digits(n):
    (x, y), (xt, yt) = lamina.datasets.digits()
    return (x[:n].reshape(-1, 1, 28, 28).astype(np.float32) / 255, y[:n],
            xt[:2000].reshape(-1, 1, 28, 28).astype(np.float32) / 255, yt[:2000])


def test_one_epoch_of_fit_on_the_gpu_matches_the_cpu_and_the_file_is_the_same(tmp_path):
    x, y, xt, yt = _digits(2000)
    lamina.manual_seed(0)
    cpu = lamina.models.mlp((1, 28, 28), [64], 10).compile("sgd", "cross_entropy", ["accuracy"])
    gpu = copy.deepcopy(cpu).to("cuda").compile("sgd", "cross_entropy", ["accuracy"])
    h_cpu = cpu.fit(x, y, epochs=1, batch_size=100, shuffle=False, verbose=0)
    h_gpu = gpu.fit(x, y, epochs=1, batch_size=100, shuffle=False, verbose=0)
    assert gpu[1].weight.is_cuda
    np.testing.assert_allclose(h_gpu.history["loss"], h_cpu.history["loss"], rtol=1e-4)
    lamina.save(gpu, tmp_path / "gpu.npz")
    lamina.save(cpu, tmp_path / "cpu.npz")
    loaded = lamina.load(tmp_path / "gpu.npz")
    assert not loaded[1].weight.is_cuda
    np.testing.assert_allclose(loaded[1].weight.detach().numpy(), gpu[1].weight.detach().cpu().numpy())
    back = lamina.load(tmp_path / "cpu.npz", map_location="cuda")
    assert back[1].weight.is_cuda


def test_the_cnn_reaches_the_same_accuracy_on_the_gpu():
    """The digit CNN from the same weights, 4 epochs of 10,000 bundled digits (96.65% on the CPU of the
    reference machine): the GPU gets within half a point of the CPU, and a CUDA-graphed fit too."""
    x, y, xt, yt = _digits(10_000)
    accuracies = []
    for where, graphed in (("cpu", False), ("cuda", False), ("cuda", True)):
        lamina.manual_seed(0)
        model = lamina.models.cnn(1, 10).to(where).compile("adam", "cross_entropy", ["accuracy"])
        model.fit(x, y, epochs=4, batch_size=64, verbose=0, cuda_graph=graphed)
        accuracies.append(model.evaluate(xt, yt, verbose=0)["accuracy"])
    assert accuracies[0] > 0.95 and all(abs(a - accuracies[0]) < 0.005 for a in accuracies), accuracies


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_direct_cublas_product_equals_cupys(dtype):
    from lamina.kernels import gpu

    cupy = backend.cuda_module()
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((37, 29)).astype(dtype))
    b = cupy.asarray(rng.standard_normal((29, 41)).astype(dtype))
    w = cupy.asarray(rng.standard_normal((41, 29)).astype(dtype))
    wide = cupy.asarray(rng.standard_normal((37, 60)).astype(dtype))
    cases = [(a, b), (a, w.T), (b.T, a.T), (a[3:20], b), (wide[:, 5:34], b), (a[:, :1], b[:1])]
    for left, right in cases:
        got = gpu.matmul(left, right)
        assert got is not None and got.flags.c_contiguous
        np.testing.assert_allclose(got.get(), (left @ right).get(), rtol=1e-5, atol=1e-5)
    assert gpu.matmul(a, b[:, ::2]) is None  # a stride cuBLAS cannot read: CuPy's matmul takes it


def test_the_gpu_cross_entropy_kernel_equals_the_reference():
    from lamina.kernels import gpu

    cupy = backend.cuda_module()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 50)
    labels[[3, 9]] = -100
    for reduction in ("mean", "sum", "none"):
        loss_cpu = lamina.tensor(x, requires_grad=True)
        value = F.cross_entropy(loss_cpu, lamina.tensor(labels), reduction=reduction)
        value.backward(lamina.ones(value.shape) if reduction == "none" else None)
        xg, lg = cupy.asarray(x), cupy.asarray(labels)
        got, saved = gpu.cross_entropy(xg, lg, -100, reduction)
        gy = cupy.ones(got.shape, dtype=cupy.float32)
        grad = gpu.cross_entropy_backward(xg, lg, saved, gy, -100, reduction)
        np.testing.assert_allclose(got.get(), value.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad.get(), loss_cpu.grad.numpy(), rtol=1e-5, atol=1e-6)
    bad = cupy.asarray(np.array([0, 9] + [1] * 48))
    assert np.isnan(float(gpu.cross_entropy(cupy.asarray(x), bad, -100, "mean")[0]))


def _mlp_and_batches(seed=0):
    lamina.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).to("cuda")
    rng = np.random.default_rng(seed)
    batches = [(lamina.from_numpy(rng.standard_normal((16, 20)).astype(np.float32)).cuda(),
                lamina.from_numpy(rng.integers(0, 5, 16)).cuda()) for _ in range(12)]
    return model, batches


def test_a_graphed_step_trains_exactly_as_the_eager_loop():
    losses = {}
    for graphed in (False, True):
        model, batches = _mlp_and_batches()
        opt = lamina.optim.Adam(model.parameters(), lr=1e-2)
        step = lamina.training.GraphedStep(model, F.cross_entropy)
        losses[graphed] = []
        for x, y in batches:
            if graphed:
                loss = step(x, y)
            else:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
            opt.step()
            losses[graphed].append(loss.item())
    assert len(step.graphs) == 1
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)


def test_a_graph_refuses_host_reads_and_random_draws_with_one_clear_error():
    model, batches = _mlp_and_batches()
    x, y = batches[0]
    F.cross_entropy(model(x), y).backward()  # warm-up
    with pytest.raises(RuntimeError, match="lamina.cuda.graph: the captured code did something"):
        with lamina.cuda.graph(lamina.cuda.CUDAGraph()):
            model(x).sum().item()
    with pytest.raises(RuntimeError, match="random draw"):
        with lamina.cuda.graph(lamina.cuda.CUDAGraph()):
            F.dropout(model(x), 0.5, training=True)
    assert F.cross_entropy(model(x), y).item() > 0  # the device is usable after a failed capture


@pytest.mark.parametrize("stride,padding,dilation,kernel", [(1, 0, 1, 3), (2, 1, 1, 3), (1, 2, 2, 3), (2, 0, 1, 2),
                                                            (3, 1, 1, 2)])
def test_the_window_kernels_equal_the_reference(stride, padding, dilation, kernel):
    from lamina.kernels import gpu, reference
    from lamina.ops.conv import geometry

    cupy = backend.cuda_module()
    rng = np.random.default_rng(0)
    v = cupy.asarray(rng.standard_normal((2, 9, 11, 5)).astype(np.float32))
    g = geometry((9, 11), (kernel, kernel), stride, padding, dilation)
    np.testing.assert_allclose(gpu.im2col(v, g).get(), reference.im2col(v, g).get())
    rows = cupy.asarray(rng.standard_normal((2 * g.out_hw[0] * g.out_hw[1], 4)).astype(np.float32))
    w = cupy.asarray(rng.standard_normal((4, 5, kernel, kernel)).astype(np.float32))
    np.testing.assert_allclose(gpu.conv_input_grad(rows, w, g, 2).get(),
                               cupy.ascontiguousarray(reference.conv_input_grad(rows, w, g, 2)).get(),
                               rtol=1e-5, atol=1e-5)
    pool = geometry((9, 11), (kernel, kernel), stride, padding if padding * 2 <= kernel else 0, dilation)
    for relu in (False, True):
        best, index = gpu.max_pool(v, pool, relu)
        best_ref, index_ref = reference.max_pool(v, pool, relu)
        np.testing.assert_array_equal(best.get(), best_ref.get())
        np.testing.assert_array_equal(index.get(), index_ref.get())
    gy = cupy.asarray(rng.standard_normal(best.shape).astype(np.float32))
    np.testing.assert_allclose(gpu.max_pool_scatter(gy, index, pool, 2).get(),
                               cupy.ascontiguousarray(reference.max_pool_scatter(gy, index, pool, 2)).get(),
                               rtol=1e-6, atol=1e-6)


def test_fit_with_a_cuda_graph_gives_the_losses_of_plain_fit():
    x, y, xt, yt = _digits(1000)
    histories = []
    for graphed in (False, True):
        lamina.manual_seed(0)
        model = lamina.models.mlp((1, 28, 28), [64], 10).to("cuda").compile("adam", "cross_entropy", ["accuracy"])
        histories.append(model.fit(x, y, epochs=3, batch_size=100, shuffle=False, verbose=0, cuda_graph=graphed))
    np.testing.assert_allclose(histories[1].history["loss"], histories[0].history["loss"], rtol=1e-5)
    np.testing.assert_allclose(histories[1].history["accuracy"], histories[0].history["accuracy"])
