"""lamina's hot loops, each one function that runs its NumPy reference or its compiled (Numba) twin.

`lamina.backend` holds the choice (`lamina.set_kernels("numpy" | "numba")`, the environment variable
LAMINA_KERNELS; numba by default where it is installed). The compiled path is taken only for NumPy arrays of
the dtypes the kernels were written for, and only where the work is large enough to repay a kernel launch;
everything else, CuPy arrays included, runs the reference. The first compiled call imports Numba and loads
(or, the very first time, compiles) the kernel, so `import lamina` and small jobs never pay for it.
"""

import functools
import math

import numpy as np

from lamina import backend
from lamina.kernels import reference

# Below this many elements a kernel saves less than its call costs; the NumPy reference runs instead. The
# optimizer steps alone do not repay importing Numba and loading their kernels (about 0.6 s of CPU a process;
# ARCHITECTURE.md, "Compiled kernels") unless a parameter is very large: `lamina train`'s MLP, 2,400 Adam steps
# on 235,000 weights, would save about as much as it paid. Once another kernel has loaded Numba they run
# compiled from MIN_ELEMENTS on (Adam's step on 205,000 weights: 0.28 ms in NumPy, 0.09 ms compiled).
MIN_ELEMENTS = 1 << 15
MIN_PARAMETER_ELEMENTS = 1 << 22
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


_module = None  # lamina.kernels.compiled, once imported
_gpu_module = None  # lamina.kernels.gpu, once imported


def _gpu(array):
    """lamina.kernels.gpu when `array` is a CuPy array of a float dtype, else None."""
    global _gpu_module
    if type(array) is np.ndarray or not type(array).__module__.startswith("cupy") or array.dtype not in _FLOATS:
        return None
    if not backend.gpu_kernels():
        return None
    if _gpu_module is None:
        from lamina.kernels import gpu  # CuPy's kernels are built here, on the first GPU array that wants one

        _gpu_module = gpu
    return _gpu_module


def _compiled(*arrays, size=None, least=None):
    """The compiled module when the numba path is chosen and pays for these arrays, else None."""
    global _module
    if (arrays[0].size if size is None else size) < (MIN_ELEMENTS if least is None else least):
        return None  # tested first: the cheapest test, and the one that small networks fail on every call
    if backend.get_kernels() != "numba":
        return None
    for a in arrays:
        if type(a) is not np.ndarray:
            return None
    if arrays[0].dtype not in _FLOATS:
        return None
    if _module is None:
        from lamina.kernels import compiled  # Numba is imported here, on the first call that wants it

        _module = compiled
    return _module


def matmul(a, b):
    """a @ b; on a GPU, 2-D float products go to cuBLAS directly (gpu.matmul: less Python, and capturable)."""
    if type(a) is not np.ndarray and a.ndim == 2 and b.ndim == 2 and type(b) is type(a):
        gpu = _gpu(a)
        if gpu is not None and b.device.id == a.device.id:  # else CuPy's matmul gives the mixed-device error
            out = gpu.matmul(a, b)
            if out is not None:
                return out
    elif (type(a) is np.ndarray and a.ndim == 2 and b.ndim == 2 and a.shape[1] >= 4096 and b.shape[1] <= 64
          and a.shape[0] > b.shape[1] and a.flags.f_contiguous and not a.flags.c_contiguous):
        # A weight gradient: rows.T @ cols, a sum over many rows into a tall, narrow result. OpenBLAS runs the
        # product the other way round, (cols.T @ rows).T, 10-35% faster at one thread (W2's first convolution,
        # (32, 86528) @ (86528, 9): 2.5 ms against 1.7; W4's first input projection, (512, 6400) @ (6400, 40)).
        return np.ascontiguousarray((b.T @ a.T).T)
    return a @ b


@functools.lru_cache(maxsize=32)
def _ones(xp, n, dtype):
    """A read-only row of ones, kept: bias gradients need the same one every step."""
    ones = xp.ones((1, n), dtype=dtype)
    if xp is np:
        ones.flags.writeable = False
    return ones


def row_sum(m):
    """The sum of the rows of 2-D m (a bias gradient), as a product with a row of ones: BLAS does it several
    times faster than NumPy's reduction along axis 0, and on a GPU it goes through `matmul`, which a CUDA
    graph can capture."""
    ones = _ones(backend.get_array_module(m), m.shape[0], m.dtype)
    return ones[0] @ m if type(m) is np.ndarray else matmul(ones, m)[0]


def gpu_kernels_for(array):
    """lamina.kernels.gpu when `array` is on a GPU and the fused kernels are on, else None (for ops with a
    GPU-only fast path, such as cross-entropy)."""
    return None if type(array) is np.ndarray else _gpu(array)


def _window(g):
    (top, _), (left, _) = g.pads
    return (*g.stride, *g.dilation, top, left)


def im2col(v, g, ones=False):
    """(N * Ho * Wo, kh * kw * C [+ 1]) from v (N, H, W, C): each output position's receptive field,
    channels-last, and with ones a last column of ones; see reference.im2col."""
    fast = _compiled(v, size=v.shape[0] * math.prod(g.out_hw) * math.prod(g.kernel) * v.shape[3])
    if fast is None or v.shape[3] < reference.FEW_CHANNELS:
        # With few channels the reference's kh * kw slab copies beat the compiled per-element loop (3.4 ms
        # against 0.5 for W2's first layer, 128 x 28 x 28 x 1, at one and at two threads).
        gpu = _gpu(v)
        if gpu is None or ones:
            return reference.im2col(v, g, ones)
        return gpu.im2col(v, g)
    n, size = v.shape[0], math.prod(g.kernel) * v.shape[3]
    cols = np.empty((n, *g.out_hw, size + ones), dtype=v.dtype)
    fast.im2col(v, *g.out_hw, *g.kernel, *_window(g), ones, cols)
    return cols.reshape(n * math.prod(g.out_hw), size + ones)


def conv_input_grad(rows, w, g, n):
    """A convolution's input gradient (N, H, W, C) from its output gradient rows (N * Ho * Wo, O) and weight
    w (O, C, kh, kw): one matrix product into the receptive fields, then col2im."""
    fast = _compiled(rows, w, size=rows.shape[0] * math.prod(w.shape[1:]))
    if fast is None or w.shape[1] < reference.FEW_CHANNELS:  # as in im2col: 2.3 ms against 3.5 for one channel
        gpu = _gpu(rows)
        if gpu is not None and w.dtype == rows.dtype:
            return gpu.conv_input_grad(rows, w, g, n)
        return reference.conv_input_grad(rows, w, g, n)
    o, c = w.shape[:2]
    cols = rows @ w.transpose(0, 2, 3, 1).reshape(o, -1)  # (N * Ho * Wo, kh * kw * C), in BLAS
    out = np.empty((n, *g.in_hw, c), dtype=rows.dtype)
    fast.col2im(cols.reshape(n, *g.out_hw, *g.kernel, c), *_window(g), out)
    return out


def max_pool(v, g, relu=False):
    """(best, index) (N, Ho, Wo, C): each window's maximum of v (N, H, W, C) (then max(best, 0) when relu)
    and the kernel position that held it, the first on ties."""
    fast = _compiled(v)
    if fast is None:
        gpu = _gpu(v)
        return reference.max_pool(v, g, relu) if gpu is None else gpu.max_pool(v, g, relu)
    shape = (v.shape[0], *g.out_hw, v.shape[3])
    best = np.empty(shape, dtype=v.dtype)
    index = np.empty(shape, dtype=np.int8 if math.prod(g.kernel) < 128 else np.int32)
    fast.max_pool(v, *g.kernel, *_window(g), relu, best, index)
    return best, index


def max_pool_scatter(gy, index, g, n):
    """The input-sized (N, H, W, C) gradient of max pooling: gy (N, Ho, Wo, C) routed to each maximum."""
    fast = _compiled(gy, index)
    if fast is None:
        gpu = _gpu(gy)
        return reference.max_pool_scatter(gy, index, g, n) if gpu is None else gpu.max_pool_scatter(gy, index, g, n)
    out = np.empty((n, *g.in_hw, gy.shape[3]), dtype=gy.dtype)
    gy = np.ascontiguousarray(gy)  # after a Flatten it comes channels-first: strided reads cost 2.5x the copy
    fast.max_pool_scatter(gy, index, *g.kernel, *_window(g), reference.tiles(g), not reference.overlapping(g),
                          out)
    return out


def _parameter_threshold():
    return MIN_PARAMETER_ELEMENTS if _module is None else MIN_ELEMENTS


def _flat(array):
    return array.reshape(-1)  # a view: parameters and their state are contiguous


def adam_step(param, grad, m, v, v_max, scratch, lr, beta1, beta2, eps, step, weight_decay, decoupled):
    """One Adam / AdamW update of param (and m, v, v_max) in place; see reference.adam_step."""
    arrays = (param, grad, m, v) + (() if v_max is None else (v_max,))
    gpu = _gpu(param)
    if gpu is not None and v_max is None and all(a.dtype == param.dtype for a in arrays):
        return gpu.adam_step(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled)
    fast = _compiled(*arrays, least=_parameter_threshold())
    if fast is None or not all(a.flags.c_contiguous and a.dtype == param.dtype for a in arrays):
        return reference.adam_step(param, grad, m, v, v_max, scratch, lr, beta1, beta2, eps, step, weight_decay,
                                   decoupled)
    real = param.dtype.type  # scalars in param's dtype: float32 arithmetic stays float32, as in the reference
    fast.adam_step(_flat(param), _flat(grad), _flat(m), _flat(v), _flat(m if v_max is None else v_max),
                   v_max is not None, real(lr), real(1 - beta1), real(beta2), real(1 - beta2), real(eps),
                   real(math.sqrt(1 - beta2**step)), real(lr / (1 - beta1**step)), real(weight_decay),
                   real(1 - lr * weight_decay), decoupled)


def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """One SGD update of param (and its momentum buffer buf, or None) in place; see reference.sgd_step."""
    arrays = (param, grad) + (() if buf is None else (buf,))
    gpu = _gpu(param)
    if gpu is not None and buf is None and grad.dtype == param.dtype:
        return gpu.sgd_step(param, grad, lr, weight_decay)
    fast = _compiled(*arrays, least=_parameter_threshold())
    if fast is None or not all(a.flags.c_contiguous and a.dtype == param.dtype for a in arrays):
        return reference.sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first)
    real = param.dtype.type
    fast.sgd_step(_flat(param), _flat(grad), _flat(param if buf is None else buf), buf is not None, real(lr),
                  real(momentum), real(1 - dampening), real(weight_decay), nesterov, first)


def _same_dtype(first, *others):
    for a in others:
        if a is not None and (type(a) is not np.ndarray or a.dtype != first.dtype):
            return False
    return True


def _affine(weight, dtype):
    """weight as the kernels take it: contiguous, or an empty stand-in (never read) when there is none."""
    return np.empty(0, dtype) if weight is None else np.ascontiguousarray(weight)


def _blocks(rows):
    """How many blocks of rows the row kernels share among threads: a fixed count, so that results never depend
    on the number of threads."""
    return min(len(rows), 32)


def layer_norm(x, weight, bias, eps):
    """(y, mean, rstd): LayerNorm over the rows of x (rows, n); see reference.layer_norm."""
    fast = _compiled(x)
    if fast is None or x.shape[1] == 0 or not _same_dtype(x, weight, bias):
        return reference.layer_norm(x, weight, bias, eps)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    mean, rstd = np.empty(len(x), x.dtype), np.empty(len(x), x.dtype)
    fast.layer_norm(x, _affine(weight, x.dtype), _affine(bias, x.dtype), weight is not None, x.dtype.type(eps),
                    _blocks(x), y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(g, x, mean, rstd, weight):
    """(gx, gweight, gbias) of layer_norm; see reference.layer_norm_backward."""
    fast = _compiled(g)
    if fast is None or g.shape[1] == 0 or not _same_dtype(g, x, mean, weight):
        return reference.layer_norm_backward(g, x, mean, rstd, weight)
    g, x = np.ascontiguousarray(g), np.ascontiguousarray(x)
    gx = np.empty_like(g)
    gweight_parts, gbias_parts = np.empty((2, _blocks(g), g.shape[1]), g.dtype)
    fast.layer_norm_backward(g, x, _affine(weight, g.dtype), weight is not None, mean, rstd, gx, gweight_parts,
                             gbias_parts)
    if weight is None:
        return gx, None, None
    return gx, gweight_parts.sum(axis=0), gbias_parts.sum(axis=0)


def attention_softmax_(scores_t, scale, bias_t):
    """scores_t (B, H, S, L), attention scores held transposed (keys down the rows) <- their softmax over the
    keys, in place; bias_t broadcasts to scores_t or is None. See reference.attention_softmax_."""
    fast = _compiled(scores_t)
    if fast is None or scores_t.ndim != 4 or not scores_t.flags.c_contiguous or \
            not _same_dtype(scores_t, bias_t) or (bias_t is not None and bias_t.ndim > 4):
        return reference.attention_softmax_(scores_t, scale, bias_t)
    # bias 4-D, its broadcast dims kept at 1 for the kernel to index modulo (a causal mask is not expanded)
    add = scores_t[:1, :1, :1] if bias_t is None else bias_t.reshape((1,) * (4 - bias_t.ndim) + bias_t.shape)
    add = np.broadcast_to(add, add.shape[:3] + scores_t.shape[3:])  # rows read whole (a key padding mask is 1 wide)
    fast.attention_softmax_(scores_t, scores_t.dtype.type(scale), np.ascontiguousarray(add), bias_t is not None,
                            _blocks(scores_t.reshape(-1, *scores_t.shape[2:])))
    return scores_t


def attention_softmax_backward_(grad_t, weights_t, scale):
    """grad_t <- weights_t * (grad_t - sum(grad_t * weights_t)) * scale over axis -2, in place."""
    fast = _compiled(grad_t)
    if fast is None or grad_t.ndim != 4 or not (grad_t.flags.c_contiguous and weights_t.flags.c_contiguous) or \
            not _same_dtype(grad_t, weights_t):
        return reference.attention_softmax_backward_(grad_t, weights_t, scale)
    fast.attention_softmax_backward_(grad_t, weights_t, grad_t.dtype.type(scale),
                                     _blocks(grad_t.reshape(-1, *grad_t.shape[2:])))
    return grad_t


def embedding_backward(g, indices, rows):
    """The (rows, D) gradient of an embedding table from that of its looked-up rows g (N, D) and their
    indices (N,); see reference.embedding_backward."""
    fast = _compiled(g)
    if fast is None or indices.dtype.kind not in "iu":
        return reference.embedding_backward(g, indices, rows)
    out = np.zeros((rows, g.shape[1]), dtype=g.dtype)
    fast.embedding_backward(np.ascontiguousarray(g), np.ascontiguousarray(indices), out)
    return out


def lstm_cells(gx):
    """(cell, cell_backward): reference.lstm_cell and lstm_cell_backward, or their compiled twins, for a whole
    sequence with gate inputs gx (T, B, 4H), chosen once (choosing at each of a sequence's steps cost W4 a tenth
    of its elementwise time). The size threshold applies to the whole sequence: the compiled twins are serial,
    with no launch to repay, but a small job should not import Numba."""
    fast = _compiled(gx)
    if fast is None:
        return reference.lstm_cell, reference.lstm_cell_backward
    one = gx.dtype.type(1)
    return fast.lstm_cell, lambda dh, dc, a, c_prev, tanh_c, d: fast.lstm_cell_backward(dh, dc, a, c_prev, tanh_c,
                                                                                         d, one)


def relu_backward(g, y):
    """g where y > 0, else 0: the gradient through a ReLU from its output y; see reference.relu_backward."""
    fast = _compiled(g)
    if fast is None or g.shape != y.shape or not _same_dtype(g, y) or g.ndim == 0:
        gpu = _gpu(g)
        if gpu is not None and type(y) is type(g) and y.dtype == g.dtype:
            return gpu.relu_backward(g, y)
        return reference.relu_backward(g, y)
    g, y = np.ascontiguousarray(g), np.ascontiguousarray(y)
    rows, out = g.reshape(-1, g.shape[-1]), np.empty_like(g)
    fast.relu_backward(rows, y.reshape(rows.shape), out.reshape(rows.shape), _blocks(rows))
    return out


def bias_relu_(y, bias):
    """y <- max(y + bias, 0) in place, bias (n,) along y's last axis; see reference.bias_relu_."""
    fast = _compiled(y)
    if fast is None or not y.flags.c_contiguous or not _same_dtype(y, bias) or bias.shape != y.shape[-1:]:
        gpu = _gpu(y)
        if gpu is not None and type(bias) is type(y) and bias.dtype == y.dtype:
            return gpu.bias_relu_(y, bias)
        return reference.bias_relu_(y, bias)
    fast.bias_relu_(y.reshape(-1, y.shape[-1]), np.ascontiguousarray(bias), _blocks(y.reshape(-1, y.shape[-1])))
    return y
