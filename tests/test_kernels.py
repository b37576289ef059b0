"""Every compiled kernel against its NumPy reference, and gradients through both paths.

The compiled path runs here for every size (its thresholds are lowered to 0), so small inputs exercise it;
without Numba the tests that need it are skipped and the reference path is checked alone.
"""

import numpy as np
import pytest

import lamina
from lamina import backend, kernels
from lamina.kernels import reference
from lamina.ops.conv import geometry, relu_max_pool2d

PATHS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba is not installed"))]
needs_numba = pytest.mark.skipif(__import__("importlib").util.find_spec("numba") is None,
                                 reason="numba is not installed")


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run the test on one kernel path, the compiled one for inputs of any size."""
    before = backend.get_kernels()
    backend.set_kernels(request.param)
    monkeypatch.setattr(kernels, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(kernels, "MIN_PARAMETER_ELEMENTS", 0)
    yield request.param
    backend.set_kernels(before)


@pytest.fixture
def compiled(monkeypatch):
    pytest.importorskip("numba")
    before = backend.get_kernels()
    backend.set_kernels("numba")
    monkeypatch.setattr(kernels, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(kernels, "MIN_PARAMETER_ELEMENTS", 0)
    from lamina.kernels import compiled

    yield compiled
    backend.set_kernels(before)


WINDOWS = [  # (input H, W), kernel, stride, padding, dilation, ceil_mode
    ((9, 9), 3, 1, 0, 1, False),
    ((9, 8), 3, 2, 1, 1, False),
    ((10, 7), (3, 2), (2, 1), (1, 0), (1, 2), False),
    ((8, 8), 2, 2, 0, 1, False),
    ((9, 9), 3, 2, 1, 1, True),
    ((7, 7), 3, 1, 1, 2, False),
    ((8, 8), 2, 3, 0, 1, False),  # gaps between windows
    ((9, 9), 2, 3, 0, 2, False),  # holes inside dilated windows
    ((9, 9), 2, 2, 0, 1, True),  # disjoint windows, the last hanging over the edge
]


def _images(shape, dtype=np.float32, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: windows hold several equal maxima, so the first must win on both paths
        return rng.integers(-2, 3, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("channels", [1, 5, 16])
def test_im2col_and_conv_input_grad_match_the_reference(compiled, threads, window, channels):
    hw, k, s, p, d, _ = window
    g = geometry(hw, k, s, p, d)
    v = _images((3, *hw, channels))
    np.testing.assert_array_equal(kernels.im2col(v, g), reference.im2col(v, g))
    with_ones = kernels.im2col(v, g, ones=True)
    np.testing.assert_array_equal(with_ones, reference.im2col(v, g, ones=True))
    np.testing.assert_array_equal(with_ones[:, :-1], reference.im2col(v, g))
    assert (with_ones[:, -1] == 1).all()
    w = _images((4, channels, *g.kernel), seed=1)
    rows = _images((3 * g.out_hw[0] * g.out_hw[1], 4), seed=2)
    got, want = kernels.conv_input_grad(rows, w, g, 3), reference.conv_input_grad(rows, w, g, 3)
    assert got.dtype == np.float32 and got.shape == want.shape == (3, *hw, channels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_and_its_scatter_match_the_reference(compiled, threads, window, relu, ties):
    hw, k, s, p, d, ceil = window
    g = geometry(hw, k, s, p, d, ceil, op="max_pool2d")
    v = _images((2, *hw, 6), ties=ties)
    (best, index), (want_best, want_index) = kernels.max_pool(v, g, relu), reference.max_pool(v, g, relu)
    np.testing.assert_array_equal(best, want_best)
    np.testing.assert_array_equal(index, want_index)
    assert index.dtype == want_index.dtype
    gy = _images(best.shape, seed=3)
    scattered = reference.max_pool_scatter(gy, index, g, 2)
    np.testing.assert_allclose(kernels.max_pool_scatter(gy, index, g, 2), scattered, rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(scattered) <= gy.size  # elements outside every window get 0, not leftover memory


@pytest.mark.parametrize("window", [((8, 8), 2, 2, 0, 1, False), ((11, 11), 2, 2, 0, 1, False)])
def test_max_pool_scatter_takes_a_channels_first_gradient(compiled, window):
    # after a Flatten the incoming gradient is an (N, C, H, W) array seen channels-last: a strided view
    hw, k, s, p, d, ceil = window
    g = geometry(hw, k, s, p, d, ceil, op="max_pool2d")
    _, index = kernels.max_pool(_images((2, *hw, 6)), g)
    gy = _images((2, 6, *g.out_hw), seed=4).transpose(0, 2, 3, 1)
    want = reference.max_pool_scatter(gy, index, g, 2)
    np.testing.assert_array_equal(kernels.max_pool_scatter(gy, index, g, 2), want)


@pytest.mark.parametrize("shape", [(32, 5000, 9), (100, 4096, 64), (12, 4096, 64), (20, 4096, 65)])
def test_weight_gradient_products_equal_numpys_in_either_orientation(shape):
    # kernels.matmul runs a tall, narrow rows.T @ cols product the other way round; the result must not change
    m, k, n = shape
    rng = np.random.default_rng(8)
    rows, cols = rng.standard_normal((k, m)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    got = kernels.matmul(rows.T, cols)
    assert got.shape == (m, n) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, rows.T.astype(np.float64) @ cols, rtol=1e-4, atol=1e-3)


def test_max_pool_propagates_nan_as_the_reference_does(compiled):
    g = geometry((4, 4), 2, 2, 0, 1, False, op="max_pool2d")
    v = _images((1, 4, 4, 3))
    v[0, 1, 1, 0] = np.nan
    (best, index), (want_best, want_index) = kernels.max_pool(v, g), reference.max_pool(v, g)
    np.testing.assert_array_equal(best, want_best)
    np.testing.assert_array_equal(index, want_index)
    assert np.isnan(best[0, 0, 0, 0])


@pytest.mark.parametrize("options", [
    dict(), dict(weight_decay=0.1), dict(amsgrad=True), dict(weight_decay=0.05, amsgrad=True, maximize=True)])
@pytest.mark.parametrize("kind", ["Adam", "AdamW"])
def test_adam_steps_match_the_reference(compiled, threads, kind, options):
    _same_steps(lambda params: getattr(lamina.optim, kind)(params, lr=1e-2, **options))


@pytest.mark.parametrize("options", [
    dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(momentum=0.5, dampening=0.3, maximize=True)])
def test_sgd_steps_match_the_reference(compiled, threads, options):
    _same_steps(lambda params: lamina.optim.SGD(params, lr=0.1, **options))


def _same_steps(make, steps=4):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(shape).astype(np.float32) for shape in ((7, 5), (5,), (3, 2, 2))]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in start] for _ in range(steps)]
    results, states = {}, {}
    for name in ("numpy", "numba"):
        backend.set_kernels(name)
        params = [lamina.nn.Parameter(lamina.tensor(w.copy())) for w in start]
        opt = make(params)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = lamina.tensor(g)
            opt.step()
        results[name] = [p.detach().numpy().copy() for p in params]
        states[name] = opt.state_dict()
    for got, want in zip(results["numba"], results["numpy"]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert states["numba"]["state"].keys() == states["numpy"]["state"].keys()
    for index, state in states["numpy"]["state"].items():  # the state dict's format is the reference's
        other = states["numba"]["state"][index]
        assert other.keys() == state.keys()
        for key, value in state.items():
            np.testing.assert_allclose(other[key], value, rtol=1e-6, atol=1e-6, err_msg=key)


def test_compiled_kernels_keep_float64_float64(compiled):
    g = geometry((6, 6), 3, 1, 1, 1)
    v = _images((2, 6, 6, 3), np.float64)
    assert kernels.im2col(v, g).dtype == np.float64
    assert kernels.max_pool(v, g)[0].dtype == np.float64


@pytest.fixture(params=[1, 2])
def threads(request, monkeypatch):
    """The kernels run serially at one thread and in parallel at more (here for inputs of any size): test both."""
    from lamina.kernels import compiled

    monkeypatch.setattr(compiled, "PARALLEL_WORK", 0)
    before = lamina.get_num_threads()
    lamina.set_num_threads(request.param)
    yield request.param
    lamina.set_num_threads(before)


@pytest.mark.parametrize("n", [1, 7, 64, 67])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_kernels_match_the_reference(compiled, threads, n, affine, dtype):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((37, n)) * 3 + 5).astype(dtype)  # an offset mean: the backward's sums must hold up
    weight, bias = (rng.standard_normal((2, n)).astype(dtype) if affine else (None, None))
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    got, want = kernels.layer_norm(x, weight, bias, 1e-5), reference.layer_norm(x, weight, bias, 1e-5)
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)
    g = rng.standard_normal((37, n)).astype(dtype)
    got = kernels.layer_norm_backward(g, x, *want[1:], weight)
    for a, b in zip(got, reference.layer_norm_backward(g, x, *want[1:], weight)):
        if b is None:
            assert a is None
            continue
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


def test_layer_norm_kernel_keeps_nan_and_constant_rows(compiled):
    x = np.ones((3, 16), np.float32)
    x[1, 3] = np.nan
    y, mean, rstd = kernels.layer_norm(x, None, None, 1e-5)
    want = reference.layer_norm(x, None, None, 1e-5)
    np.testing.assert_array_equal(y, want[0])  # constant rows normalize to 0; the NaN row stays NaN
    assert np.isnan(y[1]).all() and (y[[0, 2]] == 0).all()
    with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 on a constant row: 0 / 0, NaN on both paths
        got, want = kernels.layer_norm(x, None, None, 0.0), reference.layer_norm(x, None, None, 0.0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.parametrize("bias", ["none", "causal", "padding", "full"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_softmax_kernels_match_the_reference(compiled, threads, bias, dtype):
    rng = np.random.default_rng(1)
    shape = (3, 2, 6, 5)  # (B, H, S, L): transposed scores, the softmax runs over axis -2
    scores = (rng.standard_normal(shape) * 4).astype(dtype)
    add = {"none": None, "causal": np.tril(np.full((6, 5), -np.inf), -1),
           "padding": np.where(np.arange(6) >= 4, -np.inf, 0.0).reshape(1, 1, 6, 1),
           "full": rng.standard_normal(shape)}[bias]
    add = None if add is None else add.astype(dtype)
    got = kernels.attention_softmax_(scores.copy(), 0.3, add)
    want = reference.attention_softmax_(scores.copy(), 0.3, add)
    assert got.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(got, want, **tol)
    grad = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(kernels.attention_softmax_backward_(grad.copy(), want, 0.3),
                               reference.attention_softmax_backward_(grad.copy(), want, 0.3), **tol)


def test_attention_softmax_kernel_gives_nan_for_queries_with_nothing_to_attend(compiled):
    scores_t = np.zeros((1, 1, 3, 2), np.float32)  # transposed: keys down the rows, one query per column
    bias_t = np.array([[0, -np.inf], [-np.inf, -np.inf], [-np.inf, -np.inf]], np.float32)
    got = kernels.attention_softmax_(scores_t, 1.0, bias_t)
    np.testing.assert_array_equal(got[0, 0, :, 0], [1, 0, 0])
    assert np.isnan(got[0, 0, :, 1]).all()  # as the composite softmax (and PyTorch's math path) gives


@pytest.mark.parametrize("width", [5, 64])
def test_embedding_backward_kernel_matches_the_reference(compiled, threads, width):
    rng = np.random.default_rng(3)
    indices = rng.integers(0, 7, 300)  # many repeats, and rows that none looked up
    g = rng.standard_normal((300, width)).astype(np.float32)
    got = kernels.embedding_backward(g, indices, 9)
    assert got.dtype == np.float32 and got.shape == (9, width) and not got[7:].any()
    np.testing.assert_allclose(got, reference.embedding_backward(g, indices, 9), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_cell_kernels_match_the_reference(compiled, dtype):
    rng = np.random.default_rng(4)
    batch, hidden = 5, 7
    a, gx = (rng.standard_normal((batch, 4 * hidden)).astype(dtype) * 3 for _ in range(2))
    c = rng.standard_normal((batch, hidden)).astype(dtype)
    tol = {"rtol": 2e-6, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-13}
    compiled_cell, compiled_backward = kernels.lstm_cells(a)
    assert compiled_cell is not reference.lstm_cell
    outputs = []
    for cell in (compiled_cell, reference.lstm_cell):
        state = [a.copy(), gx, c.copy(), np.empty_like(c), np.empty_like(c)]
        cell(*state)
        outputs.append(state[:1] + state[2:])
    for got, want in zip(*outputs):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    gates, _, tanh_c, _ = outputs[1]
    dh, dc = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    results = []
    for backward in (compiled_backward, reference.lstm_cell_backward):
        dc_in, d = dc.copy(), np.empty_like(a)
        backward(dh, dc_in, gates, c, tanh_c, d)
        results.append((dc_in, d))
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_relu_backward_kernel_matches_the_reference(compiled, threads):
    rng = np.random.default_rng(6)
    y = np.maximum(rng.standard_normal((40, 33)).astype(np.float32), 0)
    y[0, :3] = [np.nan, -0.0, np.inf]
    g = rng.standard_normal((40, 33)).astype(np.float32)
    g[1, :2], y[1, :2] = np.nan, 0
    got = kernels.relu_backward(g, y)
    assert not np.isnan(got[1, :2]).any()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference.relu_backward(g, y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_relu_kernel_matches_the_reference(compiled, threads, dtype):
    rng = np.random.default_rng(7)
    y, bias = rng.standard_normal((40, 33)).astype(dtype), rng.standard_normal(33).astype(dtype)
    y[0, :2] = [np.nan, -np.inf]
    got, want = kernels.bias_relu_(y.copy(), bias), reference.bias_relu_(y.copy(), bias)
    assert got.dtype == dtype and np.isnan(got[0, 0]) and got[0, 1] == 0
    np.testing.assert_array_equal(got, want)


# --- gradients through the ops, in float64 on both paths ---------------------------------------------------------
def test_conv2d_gradcheck_on_both_paths(path):
    x = lamina.randn(2, 3, 7, 6, dtype=lamina.float64, requires_grad=True)
    w = lamina.randn(4, 3, 3, 3, dtype=lamina.float64, requires_grad=True)
    b = lamina.randn(4, dtype=lamina.float64, requires_grad=True)
    conv = lambda x, w, b: lamina.nn.functional.conv2d(x, w, b, stride=2, padding=1, dilation=1)  # noqa: E731
    assert lamina.gradcheck(conv, (x, w, b))
    assert lamina.gradgradcheck(conv, (x, w, b))


@pytest.mark.parametrize("fused", [False, True])
def test_max_pool_gradcheck_on_both_paths(path, fused):
    x = lamina.tensor(np.random.default_rng(0).permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 10.0 - 4.9,
                      dtype=lamina.float64, requires_grad=True)  # distinct values: a unique maximum per window

    def pool(x):
        if fused:
            return relu_max_pool2d(x, 3, 2, 1)
        return lamina.nn.functional.max_pool2d(x, 3, 2, 1)

    assert lamina.gradcheck(pool, (x,))
    assert lamina.gradgradcheck(pool, (x,))


def test_sequential_runs_relu_then_max_pool_fused_with_the_same_results(path):
    lamina.manual_seed(0)
    model = lamina.nn.Sequential(lamina.nn.Conv2d(2, 4, 3), lamina.nn.ReLU(), lamina.nn.MaxPool2d(2),
                                 lamina.nn.Flatten())
    x = lamina.randn(3, 2, 9, 9)
    ops = []
    with lamina.autograd.record_ops(lambda fn, xs, out: ops.append(type(fn).__name__)):
        fused = model(x)
    assert ops == ["Conv2d", "MaxPool", "Reshape"]  # no ReLU op: it ran inside the pooling
    fused.sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))  # a watched ReLU runs on its own
    plain = model(x)
    plain.sum().backward()
    assert seen == [(3, 4, 7, 7)]
    np.testing.assert_array_equal(fused.detach().numpy(), plain.detach().numpy())
    for got, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_gradcheck_on_both_paths(path, affine):
    from lamina.ops.nn import layer_norm

    x = lamina.randn(4, 3, 5, dtype=lamina.float64, requires_grad=True)
    params = [lamina.randn(3, 5, dtype=lamina.float64, requires_grad=True) for _ in range(2)] if affine else []
    assert lamina.gradcheck(lambda *a: layer_norm(a[0], 2, *a[1:]), [x, *params])
    assert lamina.gradgradcheck(lambda *a: layer_norm(a[0], 2, *a[1:]), [x, *params])


@pytest.mark.parametrize("packed", [True, False])
def test_attention_gradcheck_on_both_paths(path, packed):
    from lamina.ops.attention import Attention

    rng = np.random.default_rng(2)
    leaf = lambda *shape: lamina.tensor(rng.standard_normal(shape), requires_grad=True)  # noqa: E731
    inputs = [leaf(2, 4, 12)] if packed else [leaf(2, 4, 4), leaf(2, 3, 4), leaf(2, 3, 6)]
    bias = np.triu(np.full((4, 4 if packed else 3), -np.inf), 1)
    fused = lambda *a: Attention(2, 0.5, bias, None, packed)(*a)  # noqa: E731
    assert lamina.gradcheck(fused, inputs)
    assert lamina.gradgradcheck(fused, inputs)


def test_embedding_gradcheck_on_both_paths(path):
    weight = lamina.randn(6, 3, dtype=lamina.float64, requires_grad=True)
    indices = np.array([[0, 2, 2], [5, 0, 2]])
    lookup = lambda w: lamina.nn.functional.embedding(indices, w)  # noqa: E731
    assert lamina.gradcheck(lookup, (weight,))
    assert lamina.gradgradcheck(lookup, (weight,))


@pytest.mark.parametrize("lengths", [None, [4, 2, 1]])
def test_lstm_sequence_gradcheck_on_both_paths(path, lengths):
    from lamina.ops.recurrent import lstm_sequence

    rng = np.random.default_rng(5)
    leaf = lambda *shape: lamina.tensor(rng.standard_normal(shape), requires_grad=True)  # noqa: E731
    sizes = None if lengths is None else tuple(int((np.array(lengths) > t).sum()) for t in range(4))
    inputs = [leaf(4, 3, 8), leaf(3, 2), leaf(3, 2), leaf(8, 2)]
    for reverse in (False, True):
        fn = lambda *a, reverse=reverse: lstm_sequence(*a, reverse=reverse, batch_sizes=sizes)  # noqa: E731
        assert lamina.gradcheck(fn, inputs)
    assert lamina.gradgradcheck(lambda *a: lstm_sequence(*a, batch_sizes=sizes), inputs)


def test_linear_relu_gradcheck_on_both_paths(path):
    from lamina.ops.nn import linear_relu

    rng = np.random.default_rng(8)
    x, w, b = (lamina.tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((2, 3, 4), (5, 4), (5,)))
    assert lamina.gradcheck(linear_relu, (x, w, b))
    assert lamina.gradgradcheck(linear_relu, (x, w, b))


# --- the CPU settings reach the compiled kernels' threads ------------------------------------------------------
@pytest.mark.skipif(backend._libm() is None, reason="flush-to-zero is set only on x86-64 Linux with glibc")
def test_worker_threads_follow_set_flush_denormal(compiled):
    try:
        for mode in (False, True):
            lamina.set_flush_denormal(mode)
            flushed = compiled.workers_flush()
            assert set(flushed.values()) == {mode}, flushed
    finally:
        lamina.set_flush_denormal(True)


def test_set_num_threads_reaches_the_compiled_kernels(compiled):
    import numba

    before = lamina.get_num_threads()
    try:
        lamina.set_num_threads(1)
        assert numba.get_num_threads() == 1
    finally:
        lamina.set_num_threads(before)
    assert numba.get_num_threads() == min(before, numba.config.NUMBA_NUM_THREADS)


def test_the_reference_path_runs_without_numba(monkeypatch):
    monkeypatch.setattr(backend, "_kernels", None)
    monkeypatch.setenv("LAMINA_KERNELS", "numpy")
    assert backend.get_kernels() == "numpy"
    assert kernels._compiled(np.ones(1 << 20, np.float32)) is None
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"lamina\[fast\]"):
        backend.set_kernels("numba")
    monkeypatch.delenv("LAMINA_KERNELS")
    monkeypatch.setattr(backend, "_kernels", None)
    assert backend.get_kernels() == "numpy"  # numba missing: the default falls back


def test_kernels_called_from_several_threads_at_once(compiled, monkeypatch):
    # Numba's workqueue pool must not be entered twice at once: the kernels take turns, and all finish.
    import threading

    from lamina.kernels import compiled as twins

    monkeypatch.setattr(twins, "PARALLEL_WORK", 0)  # every call a parallel launch
    before = lamina.get_num_threads()
    lamina.set_num_threads(2)

    g = geometry((12, 12), 3, 1, 1, 1)
    v = _images((4, 12, 12, 8))
    want = reference.im2col(v, g)
    results = []

    def work():
        results.extend(bool((kernels.im2col(v, g) == want).all()) for _ in range(20))

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    lamina.set_num_threads(before)
    assert results == [True] * 80
