"""Convolution and pooling over (N, C, H, W) tensors, as one large matrix product each.

im2col lays every receptive field out as a row: cols[(n, i, j), (c, ki, kj)].
Then a convolution is cols @ W.reshape(O, -1).T, whose (n, i, j, o) result is
returned as an (N, O, H, W) view, so the memory stays channels-last between
layers and no op pays for a transpose it does not need. The three maps of a
convolution (output, input gradient, weight gradient) are each a Function whose
backward is written with the other two, so convolutions are twice
differentiable. Pooling pairs a gather with its adjoint scatter in the same way.
"""

import math
from typing import NamedTuple

import numpy as np

from lamina import kernels
from lamina.autograd import Function, wrap
from lamina.backend import get_array_module
from lamina.kernels.reference import crop
from lamina.kernels.reference import padded as _padded
from lamina.kernels.reference import window_offsets as _offsets
from lamina.ops.shape import broadcast_to, reshape


class Geometry(NamedTuple):
    """Everything about a sliding window over (H, W) except the data."""

    in_hw: tuple
    out_hw: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple  # ((top, bottom), (left, right))

    @property
    def padded_hw(self):
        return tuple(n + a + b for n, (a, b) in zip(self.in_hw, self.pads))

    @property
    def covered_hw(self):
        """How far the windows reach from the padded input's top-left corner."""
        return tuple((o - 1) * s + d * (k - 1) + 1
                     for o, s, d, k in zip(self.out_hw, self.stride, self.dilation, self.kernel))

    @property
    def work_hw(self):
        """The padded input, enlarged where ceil_mode windows hang over its edge."""
        return tuple(max(p, c) for p, c in zip(self.padded_hw, self.covered_hw))


def _pair(value, name):
    value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(value) != 2 or any(int(v) != v for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
    return tuple(int(v) for v in value)


def geometry(in_hw, kernel, stride=1, padding=0, dilation=1, ceil_mode=False, op="conv2d"):
    """Output size and padding of a window; padding may be an int, a pair, 'valid' or 'same'."""
    kernel, stride, dilation = _pair(kernel, "kernel_size"), _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be positive, got {kernel}, {stride}, {dilation}")
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        pads = tuple(((s - 1) // 2, s - 1 - (s - 1) // 2) for s in span)  # extra on the bottom/right, as PyTorch
    else:
        p = _pair(padding, "padding")
        pads = ((p[0], p[0]), (p[1], p[1]))
    out = []
    for n, (a, b), s, st in zip(in_hw, pads, span, stride):
        room = n + a + b - s
        if room < 0:
            raise ValueError(f"{op}: input of size {tuple(in_hw)} (padded {n + a + b}) is smaller than the "
                             f"kernel's span {s}")
        size = (-(-room // st) if ceil_mode else room // st) + 1
        if ceil_mode and (size - 1) * st >= n + a:  # the last window must start inside the input or left pad
            size -= 1
        out.append(size)
    return Geometry(tuple(in_hw), tuple(out), kernel, stride, dilation, pads)


def _nhwc(x):
    """The (N, H, W, C) view of an (N, C, H, W) array: free, and contiguous when x came from a conv."""
    return x.transpose(0, 2, 3, 1)


def _nchw(v):
    return v.transpose(0, 3, 1, 2)


def _cropped(out, g):
    """A work-sized (N, H', W', C) result cut back to the input's (N, C, H, W), as a view."""
    return _nchw(crop(out, g))


def _fold(window_values, g, x_shape):
    """Adjoint of reading windows: add window_values (N, Ho, Wo, kh, kw, C) back where each was read.

    Returns the (N, C, H, W) result as a view of channels-last memory.
    """
    xp = get_array_module(window_values)
    n, c = x_shape[:2]
    out = xp.zeros((n, *g.work_hw, c), dtype=window_values.dtype)
    for i, j, rows, cols in _offsets(g):
        out[:, rows, cols] += window_values[:, :, :, i, j]
    return _cropped(out, g)


def _im2col(x, g):
    """(N * Ho * Wo, kh * kw * C): one row per output position, the receptive field laid out channels-last."""
    return kernels.im2col(_nhwc(x), g)


def _weight_rows(w):
    """A (O, C, kh, kw) weight as (O, kh * kw * C), the column order of _im2col."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _weight_from_rows(rows, shape):
    o, c, kh, kw = shape
    return get_array_module(rows).ascontiguousarray(rows.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


def _rows(y):
    """An (N, O, H, W) array as (N * H * W, O) rows: free when y is a channels-last view."""
    n, o = y.shape[:2]
    return _nhwc(y).reshape(-1, o)


def _channels_first(rows, n, hw):
    return _nchw(rows.reshape(n, *hw, rows.shape[1]))


def _groups(total, groups):
    size = total // groups
    return [slice(k * size, (k + 1) * size) for k in range(groups)]


def check_input(x, ndim, op):
    if x.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D input ({'N, C, H, W' if ndim == 4 else 'N, C, L'}), "
                         f"got shape {x.shape}")


FOLD_BIAS_BELOW = 64  # weight columns (C * kh * kw)


class Conv2d(Function):
    """y = conv(x, w) (+ b), with w of shape (O, C / groups, kh, kw)."""

    def __init__(self, g, groups):
        self.g, self.groups = g, groups

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        n, o = x.shape[0], w.shape[0]
        if self.groups == 1 and b is not None and xp is np and math.prod(w.shape[1:]) < FOLD_BIAS_BELOW:
            # A short product (few input channels): the bias folded into it, cols @ [w | b].T with a column
            # of ones in cols, saves a pass over the output (W2's first convolution: 2.4 ms for product and
            # add, 1.0 folded). With long rows (W2's second, 288) the odd row length costs more than it saves.
            cols = kernels.im2col(_nhwc(x), self.g, ones=True)
            out = kernels.matmul(cols, np.concatenate([_weight_rows(w), b[:, None]], axis=1).T)
            self.cols = cols[:, :-1]  # the weight gradient reuses them instead of laying x out again
            return _channels_first(out, n, self.g.out_hw)
        if self.groups == 1:
            cols = _im2col(x, self.g)
            out = kernels.matmul(cols, _weight_rows(w).T)
        else:
            out = xp.empty((n * math.prod(self.g.out_hw), o), dtype=x.dtype)
            cols = []
            for cs, os_ in zip(_groups(x.shape[1], self.groups), _groups(o, self.groups)):
                cols.append(_im2col(x[:, cs], self.g))
                out[:, os_] = cols[-1] @ _weight_rows(w[os_]).T
        if b is not None:
            out += b
        self.cols = cols  # the weight gradient reuses them instead of laying x out again
        return _channels_first(out, n, self.g.out_hw)

    def backward(self, gy):
        x, w = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = Conv2dInputGrad(self.g, self.groups, x.shape)(gy, w) if need[0] else None
        gw = Conv2dWeightGrad(self.g, self.groups, w.shape, self.cols)(x, gy) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, ChannelSum()(gy) if need[2] else None

    def release(self):
        super().release()
        self.cols = None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) input with (O, C/groups, kh, kw) weight.

    >>> x, w = lamina.randn(8, 1, 28, 28), lamina.randn(16, 1, 3, 3)
    >>> lamina.nn.functional.conv2d(x, w, padding=1).shape
    lamina.Size([8, 16, 28, 28])
    """
    check_input(input, 4, "conv2d")
    if weight.ndim != 4 or input.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: input of shape {input.shape} does not fit weight of shape {weight.shape} "
                         f"with groups={groups} (input channels must equal weight.shape[1] * groups)")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise RuntimeError(f"conv2d: input ({input.dtype}), weight ({weight.dtype})"
                           + (f" and bias ({bias.dtype})" if bias is not None else "") + " must have one dtype, "
                           "as in PyTorch: convert them with .to(dtype)")
    g = geometry(input.shape[2:], weight.shape[2:], stride, padding, dilation)
    function = Conv2d(g, groups)
    return function(input, weight) if bias is None else function(input, weight, bias)
class Conv2dInputGrad(Function):
    """dx of a convolution from gy and w: the transposed convolution (ConvTranspose2d's forward)."""

    def __init__(self, g, groups, x_shape):
        self.g, self.groups, self.x_shape = g, groups, tuple(x_shape)

    def forward(self, gy, w):
        xp = get_array_module(gy)
        rows = _rows(gy)
        if self.groups == 1:
            return _input_grad(rows, w, self.g, self.x_shape)
        out = _nchw(xp.empty((self.x_shape[0], *self.x_shape[2:], self.x_shape[1]), dtype=gy.dtype))
        for cs, os_ in zip(_groups(self.x_shape[1], self.groups), _groups(w.shape[0], self.groups)):
            out[:, cs] = _input_grad(rows[:, os_], w[os_], self.g, (self.x_shape[0], cs.stop - cs.start))
        return out

    def backward(self, ggx):
        gy, w = self.inputs
        need = self.needs_input_grad
        return (Conv2d(self.g, self.groups)(ggx, w) if need[0] else None,
                Conv2dWeightGrad(self.g, self.groups, w.shape)(ggx, gy) if need[1] else None)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution: the input gradient of conv2d, with weight of shape (C_in, C_out/groups, kh, kw)."""
    check_input(input, 4, "conv_transpose2d")
    if weight.ndim != 4 or input.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise ValueError(f"conv_transpose2d: input of shape {input.shape} does not fit weight of shape "
                         f"{weight.shape} (input channels must equal weight.shape[0])")
    kernel = weight.shape[2:]
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    dilation, extra = _pair(dilation, "dilation"), _pair(output_padding, "output_padding")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1
                   for n, s, p, d, k, e in zip(input.shape[2:], stride, padding, dilation, kernel, extra))
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {extra} must be smaller than stride {stride} "
                         f"or dilation {dilation}")
    # The convolution this transposes: from the output size back to the input's; output_padding rows that
    # no window reaches get only the bias.
    g = geometry(out_hw, kernel, stride, padding, dilation, op="conv_transpose2d")
    g = g._replace(out_hw=tuple(input.shape[2:]))
    x_shape = (input.shape[0], weight.shape[1] * groups, *out_hw)
    out = Conv2dInputGrad(g, groups, x_shape)(input, weight)
    return out if bias is None else out + reshape(bias, (1, -1, 1, 1))
def _input_grad(rows, w, g, x_shape):
    return _nchw(kernels.conv_input_grad(rows, w, g, x_shape[0]))


class Conv2dWeightGrad(Function):
    """dw of a convolution from x and gy."""

    def __init__(self, g, groups, w_shape, cols=None):
        self.g, self.groups, self.w_shape, self.cols = g, groups, tuple(w_shape), cols

    def forward(self, x, gy):
        xp = get_array_module(x)
        rows = _rows(gy)
        if self.groups == 1:
            cols = self.cols if self.cols is not None else _im2col(x, self.g)
            return _weight_from_rows(kernels.matmul(rows.T, cols), self.w_shape)
        out = xp.empty(self.w_shape, dtype=x.dtype)
        for k, (cs, os_) in enumerate(zip(_groups(x.shape[1], self.groups), _groups(self.w_shape[0], self.groups))):
            cols = self.cols[k] if self.cols is not None else _im2col(x[:, cs], self.g)
            out[os_] = _weight_from_rows(rows[:, os_].T @ cols, out[os_].shape)
        return out

    def backward(self, ggw):
        x, gy = self.inputs
        need = self.needs_input_grad
        return (Conv2dInputGrad(self.g, self.groups, x.shape)(gy, ggw) if need[0] else None,
                Conv2d(self.g, self.groups)(x, ggw) if need[1] else None)

    def release(self):
        super().release()
        self.cols = None


# --- pooling ---------------------------------------------------------------------------------------
class MaxPool(Function):
    """Max over each window, of max(x, 0) when relu (a ReLU before the pooling, fused: max and ReLU commute,
    so the ReLU runs on the pooled result). The gradient goes to the first maximum of a window, as in PyTorch,
    and with relu only where that maximum is positive."""

    saved = ()

    def __init__(self, g, relu=False):
        self.g, self.relu = g, relu

    def forward(self, x):
        best, self.index = kernels.max_pool(_nhwc(x), self.g, self.relu)  # index: which kernel position won
        if self.relu:
            self.positive = best > 0
        return _nchw(best)

    def backward(self, gy):
        if self.relu:
            gy = gy * wrap(_nchw(self.positive))
        return MaxPoolScatter(self.g, self.index, self.input_shapes[0])(gy)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """The largest value of each window.

    >>> lamina.nn.functional.max_pool2d(lamina.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    g = _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    pool = MaxPool(g)
    out = pool(input)
    if not return_indices:
        return out
    # PyTorch's indices: the flat position h * W + w of each window's maximum in its input plane
    ki, kj = np.divmod(pool.index.astype(np.int64), g.kernel[1])
    xp = get_array_module(ki)
    rows = xp.arange(g.out_hw[0])[:, None, None] * g.stride[0] - g.pads[0][0] + ki * g.dilation[0]
    cols = xp.arange(g.out_hw[1])[None, :, None] * g.stride[1] - g.pads[1][0] + kj * g.dilation[1]
    return out, wrap(_nchw(rows * input.shape[3] + cols))
def relu_max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """max_pool2d(relu(input)) as one op: no full-size ReLU output forward, no full-size mask backward.
    nn.Sequential runs a ReLU followed by a MaxPool2d this way.

    >>> x = lamina.randn(2, 3, 8, 8)
    >>> fused = lamina.ops.conv.relu_max_pool2d(x, 2)
    >>> bool((fused.numpy() == lamina.nn.functional.max_pool2d(lamina.relu(x), 2).numpy()).all())
    True
    """
    return MaxPool(_pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"), True)(input)


def _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, op):
    check_input(input, 4, op)
    g = geometry(input.shape[2:], kernel_size, kernel_size if stride is None else stride, padding,
                 dilation, ceil_mode, op=op)
    if any(2 * p > k for p, k in zip((g.pads[0][0], g.pads[1][0]), g.kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {g.kernel}")
    return g


class MaxPoolScatter(Function):
    """Route each output's gradient to the input element that was its window's maximum."""

    saved = ()

    def __init__(self, g, index, x_shape):
        self.g, self.index, self.x_shape = g, index, tuple(x_shape)

    def forward(self, gy):
        return _nchw(kernels.max_pool_scatter(_nhwc(gy), self.index, self.g, self.x_shape[0]))

    def backward(self, ggx):
        return MaxPoolGather(self.g, self.index)(ggx)


class MaxPoolGather(Function):
    """Adjoint of MaxPoolScatter: read each window's maximum position (for second derivatives)."""

    saved = ()

    def __init__(self, g, index):
        self.g, self.index = g, index

    def forward(self, values):
        xp = get_array_module(values)
        source = _padded(_nhwc(values), self.g)
        out = xp.zeros(self.index.shape, dtype=values.dtype)
        for k, (_, _, rows, cols) in enumerate(_offsets(self.g)):
            out += source[:, rows, cols] * (self.index == k)
        return _nchw(out)

    def backward(self, gy):
        return MaxPoolScatter(self.g, self.index, self.input_shapes[0])(gy)


class ChannelSum(Function):
    """Sum over all but the channel dim of (N, C, H, W): a bias gradient, as one BLAS vector product."""

    saved = ()

    def forward(self, y):
        return kernels.row_sum(_rows(y))

    def backward(self, gc):
        shape = self.input_shapes[0]
        return broadcast_to(reshape(gc, (1, shape[1], 1, 1)), shape)


class WindowMean(Function):
    """Average of each window (average pooling), divided by `divisor` (a number or an (Ho, Wo) array)."""

    saved = ()

    def __init__(self, g, divisor):
        self.g, self.divisor = g, divisor

    def forward(self, x):
        v = _padded(_nhwc(x), self.g)
        total = None
        for _, _, rows, cols in _offsets(self.g):
            total = v[:, rows, cols].copy() if total is None else total.__iadd__(v[:, rows, cols])
        return _nchw(total / _divisor_nhwc(self.divisor, x))

    def backward(self, gy):
        return WindowMeanAdjoint(self.g, self.divisor, self.input_shapes[0])(gy)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """The mean of each window.

    >>> lamina.nn.functional.avg_pool2d(lamina.ones(1, 1, 4, 4), 2).shape
    lamina.Size([1, 1, 2, 2])
    """
    check_input(input, 4, "avg_pool2d")
    g = geometry(input.shape[2:], kernel_size, kernel_size if stride is None else stride, padding, 1,
                          ceil_mode, op="avg_pool2d")
    return WindowMean(g, pool_divisor(g, count_include_pad, input.dtype))(input)
class WindowMeanAdjoint(Function):
    saved = ()

    def __init__(self, g, divisor, x_shape):
        self.g, self.divisor, self.x_shape = g, divisor, tuple(x_shape)

    def forward(self, gy):
        share = _nhwc(gy) / _divisor_nhwc(self.divisor, gy)
        xp = get_array_module(gy)
        window_values = xp.broadcast_to(share[:, :, :, None, None, :], (*share.shape[:3], *self.g.kernel,
                                                                        share.shape[3]))
        return _fold(window_values, self.g, self.x_shape)

    def backward(self, ggx):
        return WindowMean(self.g, self.divisor)(ggx)


def _divisor_nhwc(divisor, like):
    """The divisor in the dtype, and on the device, of `like` (pool_divisor counts on the host)."""
    if isinstance(divisor, (int, float)):
        return like.dtype.type(divisor)
    return get_array_module(like).asarray(divisor.astype(like.dtype))[None, :, :, None]


def pool_divisor(g, count_include_pad, dtype):
    """What each average-pooling window divides by: its size, or the (Ho, Wo) counts where they differ."""
    ones = np.ones((1, *g.in_hw, 1), dtype)
    if count_include_pad:  # padding counts, but not the overhang of a ceil_mode window
        area = np.pad(ones, ((0, 0), *g.pads, (0, 0)), constant_values=1)
        flat = g._replace(in_hw=area.shape[1:3], pads=((0, 0), (0, 0)))
        v = _padded(area, flat)
    else:
        v = _padded(ones, g)
    counts = sum(v[0, rows, cols, 0] for _, _, rows, cols in _offsets(g))
    full = math.prod(g.kernel)
    return full if (counts == full).all() else counts
