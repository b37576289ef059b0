"""The NumPy reference of every kernel: the readable definition, the fallback, and what the tests hold the
compiled kernels to. Each works on NumPy and CuPy arrays alike.

Windows (convolution, pooling) take `g`, a geometry with in_hw, out_hw, kernel, stride, dilation, pads
((top, bottom), (left, right)), padded_hw and work_hw (lamina.ops.conv.Geometry); images are channels-last
(N, H, W, C).
"""

import math

import numpy as np

from lamina.backend import get_array_module


def padded(v, g, fill=0.0):
    """v (N, H, W, C) padded by g's pads, plus any overhang of ceil_mode windows."""
    (pt, pb), (pl, pr) = g.pads
    extra_h, extra_w = (w - p for w, p in zip(g.work_hw, g.padded_hw))
    if not (pt or pb or pl or pr or extra_h or extra_w):
        return v
    widths = ((0, 0), (pt, pb + extra_h), (pl, pr + extra_w), (0, 0))
    return get_array_module(v).pad(v, widths, constant_values=fill)


def window_offsets(g):
    """(i, j, rows, cols): for each kernel position, the slices of the padded input it sees, one per output."""
    (ho, wo), (sh, sw), (dh, dw) = g.out_hw, g.stride, g.dilation
    for i in range(g.kernel[0]):
        for j in range(g.kernel[1]):
            yield i, j, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)


def crop(work, g):
    """A work-sized (N, H', W', C) array cut back to the input's (N, H, W, C), as a view."""
    (pt, _), (pl, _) = g.pads
    return work[:, pt:pt + g.in_hw[0], pl:pl + g.in_hw[1]]


FEW_CHANNELS = 8  # below it, im2col copies one slab per kernel position


def im2col(v, g, ones=False):
    """(N * Ho * Wo, kh * kw * C) from v (N, H, W, C): one row per output position, its receptive field
    laid out channels-last, zeros where it reaches into the padding; with ones, one more column of ones (a
    bias folded into the product: cols @ [w | b].T)."""
    xp = get_array_module(v)
    v = padded(v, g)
    n, c = v.shape[0], v.shape[3]
    size = math.prod(g.kernel) * c
    cols = xp.empty((n, *g.out_hw, size + ones), dtype=v.dtype)
    s = cols.itemsize
    fields = xp.lib.stride_tricks.as_strided(  # the first `size` columns, a view with one axis per window axis
        cols, (n, *g.out_hw, *g.kernel, c), (*cols.strides[:3], g.kernel[1] * c * s, c * s, s))
    if c >= FEW_CHANNELS and xp is np:  # runs of channels are long enough: one strided copy beats slab copies
        sn, sh, sw, sc = v.strides
        fields[...] = np.lib.stride_tricks.as_strided(
            v, (n, *g.out_hw, *g.kernel, c),
            (sn, sh * g.stride[0], sw * g.stride[1], sh * g.dilation[0], sw * g.dilation[1], sc), writeable=False)
    else:
        for i, j, rows, columns in window_offsets(g):
            fields[:, :, :, i, j] = v[:, rows, columns]
    if ones:
        cols[..., size] = 1
    return cols.reshape(n * g.out_hw[0] * g.out_hw[1], size + ones)


def conv_input_grad(rows, w, g, n):
    """The input gradient (N, H, W, C) of a convolution from its output gradient as rows (N * Ho * Wo, O) and
    its weight w (O, C, kh, kw): col2im(rows @ w), as one small product per kernel position added straight
    into the input positions it reached, so no (N * Ho * Wo, C * kh * kw) intermediate exists."""
    xp = get_array_module(rows)
    c = w.shape[1]
    out = xp.zeros((n, *g.work_hw, c), dtype=rows.dtype)
    per_position = w.transpose(0, 2, 3, 1)  # (O, kh, kw, C)
    for i, j, rows_at, cols_at in window_offsets(g):
        out[:, rows_at, cols_at] += (rows @ per_position[:, i, j]).reshape(n, *g.out_hw, c)
    return crop(out, g)


def max_pool(v, g, relu=False):
    """(best, index), both (N, Ho, Wo, C): each window's maximum of v (N, H, W, C), then max(best, 0) when
    relu, and which kernel position (row-major) held it; on ties the first position wins, as in PyTorch."""
    xp = get_array_module(v)
    v = padded(v, g, fill=-xp.inf)
    index_type = xp.int8 if math.prod(g.kernel) < 128 else xp.int32
    best = index = None
    # Arithmetic only: NumPy's masked writes (a[mask] = k, np.where) are several times slower
    # than multiplying by a mask whose pattern the branch predictor cannot guess.
    for k, (_, _, rows, cols) in enumerate(window_offsets(g)):
        candidate = v[:, rows, cols]
        if best is None:
            best, index = candidate.copy(), xp.zeros(candidate.shape, dtype=index_type)
            continue
        better = candidate > best  # strictly: on ties the earlier position keeps the maximum
        index *= ~better
        index += better * index_type(k)
        xp.maximum(best, candidate, out=best)
    if relu:
        xp.maximum(best, 0, out=best)
    return best, index


def overlapping(g):
    return any(st < d * (k - 1) + 1 for st, d, k in zip(g.stride, g.dilation, g.kernel))


def tiles(g):
    """Whether the windows cover the (work-sized) input exactly once: no overlaps, gaps or dilation holes."""
    return g.stride == g.kernel and g.dilation == (1, 1) and g.work_hw == g.covered_hw


def max_pool_scatter(gy, index, g, n):
    """Adjoint of reading each window's maximum: gy (N, Ho, Wo, C) routed to the positions `index` names,
    as the input-sized (N, H, W, C) gradient."""
    xp = get_array_module(gy)
    c = gy.shape[3]
    out = (xp.empty if tiles(g) else xp.zeros)((n, *g.work_hw, c), dtype=gy.dtype)
    for k, (_, _, rows, cols) in enumerate(window_offsets(g)):
        if overlapping(g):
            out[:, rows, cols] += gy * (index == k)
        else:
            xp.multiply(gy, index == k, out=out[:, rows, cols])
    return crop(out, g)


def adam_step(param, grad, m, v, v_max, scratch, lr, beta1, beta2, eps, step, weight_decay, decoupled):
    """One Adam (or, with decoupled, AdamW) update of param in place, as torch.optim.Adam rounds it;
    v_max is None unless amsgrad. scratch is a work array of param's shape."""
    xp = get_array_module(param)
    if decoupled:
        param *= 1 - lr * weight_decay
    elif weight_decay:
        grad = grad + weight_decay * param
    tmp = scratch  # every pass below writes in place: no temporaries, no page faults
    xp.subtract(grad, m, out=tmp)  # m <- m + (1 - beta1)(g - m), PyTorch's lerp
    tmp *= 1 - beta1
    m += tmp
    xp.multiply(grad, grad, out=tmp)  # v <- beta2 v + (1 - beta2) g^2
    tmp *= 1 - beta2
    v *= beta2
    v += tmp
    if v_max is not None:
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    xp.sqrt(v, out=tmp)  # denominator sqrt(v / bc2) + eps, as PyTorch rounds it
    tmp /= math.sqrt(1 - beta2**step)
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= lr / (1 - beta1**step)
    param -= tmp


def sgd_step(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """One SGD update of param in place; buf is the momentum buffer (None without momentum), which the first
    step fills with the gradient, as PyTorch does."""
    if weight_decay:
        grad = grad + weight_decay * param
    if buf is not None:
        if first:
            buf[...] = grad
        else:
            buf *= momentum
            buf += (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad


# --- normalization over the last axis of a (rows, n) array ------------------------------------------------------
def layer_norm(x, weight, bias, eps):
    """(y, mean, rstd) for LayerNorm over each row of x (rows, n): y = (x - mean) * rstd * weight + bias, with
    rstd = 1 / sqrt(var + eps); weight and bias are (n,) or both None (no affine map)."""
    xp = get_array_module(x)
    mean = x.mean(axis=1, keepdims=True)
    y = x - mean
    rstd = 1 / xp.sqrt(xp.square(y).mean(axis=1, keepdims=True) + x.dtype.type(eps))
    y *= rstd
    if weight is not None:
        y *= weight
        y += bias
    return y, mean[:, 0], rstd[:, 0]


def layer_norm_backward(g, x, mean, rstd, weight):
    """(gx, gweight, gbias) of layer_norm from the output gradient g (rows, n), what it returned and weight
    (None without the affine map; then gweight and gbias are None too)."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    gweight = gbias = None
    if weight is not None:
        gweight, gbias = (g * xhat).sum(axis=0), g.sum(axis=0)
        g = g * weight
    gx = g - g.mean(axis=1, keepdims=True)
    gx -= xhat * (g * xhat).mean(axis=1, keepdims=True)
    gx *= rstd[:, None]
    return gx, gweight, gbias


# --- attention: the softmax of transposed scores (..., S, L), over keys: axis -2, in place -----------------------
# The scores are held transposed, keys down the rows, so that each query's reductions run down a column: an
# elementwise pass over rows, where a reduction along short rows of 32 is one dependent chain per row.
def attention_softmax_(scores_t, scale, bias_t):
    """scores_t <- softmax(scores_t * scale + bias_t) over axis -2, in place; bias_t broadcasts to scores_t (or
    is None). A query that bias_t forbids every key (all -inf) comes out NaN, as the composite softmax gives."""
    xp = get_array_module(scores_t)
    scores_t *= scale
    if bias_t is not None:
        scores_t += bias_t
    scores_t -= scores_t.max(axis=-2, keepdims=True)
    xp.exp(scores_t, out=scores_t)
    scores_t /= scores_t.sum(axis=-2, keepdims=True)
    return scores_t


def attention_softmax_backward_(grad_t, weights_t, scale):
    """grad_t <- the gradient of the transposed scores before scaling (k q^T) from grad_t, the transposed
    weights' gradient, in place: weights_t * (grad_t - sum(grad_t * weights_t)) * scale over axis -2."""
    grad_t -= (grad_t * weights_t).sum(axis=-2, keepdims=True)
    grad_t *= weights_t
    grad_t *= scale
    return grad_t


# --- embedding ------------------------------------------------------------------------------------------------
def embedding_backward(g, indices, rows):
    """The (rows, D) gradient of a table from that of its looked-up rows g (N, D): g[n] added into row
    indices[n], repeats adding up."""
    xp = get_array_module(g)
    out = xp.zeros((rows, g.shape[1]), dtype=g.dtype)
    xp.add.at(out, indices, g)
    return out


# --- one LSTM step around its matrix product ---------------------------------------------------------------------
def lstm_cell(a, gx, c, tanh_c, h):
    """One LSTM step after its product a (B, 4H) = h_prev W_hh^T, gates in PyTorch's order i, f, g, o; in place:
    a <- the activated gates sigmoid, sigmoid, tanh, sigmoid of a + gx; c (B, H) <- f c + i g;
    tanh_c <- tanh(c); h <- o tanh(c)."""
    xp = get_array_module(a)
    hidden = c.shape[1]
    a += gx
    sigmoids = (slice(0, 2 * hidden), slice(3 * hidden, 4 * hidden))
    for s in sigmoids:  # sigmoid(x) = 0.5 tanh(x / 2) + 0.5, so one tanh activates all four gates
        a[:, s] *= 0.5
    xp.tanh(a, out=a)
    for s in sigmoids:
        a[:, s] *= 0.5
        a[:, s] += 0.5
    i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c *= f
    c += i * g
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def lstm_cell_backward(dh, dc, a, c_prev, tanh_c, d):
    """The backward of lstm_cell: from dh, dc (B, H), the gradients of the step's h and c, and what lstm_cell
    left (a, tanh_c) with the c it started from, d (B, 4H) <- the gradient of the gates before activation, and
    dc <- that of c_prev through f (dh itself is left for the caller's product d W_hh)."""
    hidden = dc.shape[1]
    i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
    dc += dh * o * (1 - tanh_c * tanh_c)  # through h = o tanh(c)
    d[:, :hidden] = dc * g * i * (1 - i)
    d[:, hidden:2 * hidden] = dc * c_prev * f * (1 - f)
    d[:, 2 * hidden:3 * hidden] = dc * i * (1 - g * g)
    d[:, 3 * hidden:] = dh * tanh_c * o * (1 - o)
    dc *= f


def relu_backward(g, y):
    """The gradient through a ReLU from that of its output g and the output y itself: g where y > 0, else 0
    (0 even where g is NaN or inf, as PyTorch gives)."""
    return get_array_module(g).where(y > 0, g, g.dtype.type(0))


def bias_relu_(y, bias):
    """y <- max(y + bias, 0) in place (NaN stays NaN), bias broadcast along y's last axis."""
    y += bias
    return get_array_module(y).maximum(y, 0, out=y)
