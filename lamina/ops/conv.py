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

from lamina.autograd import Function
from lamina.backend import get_array_module


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


def _windows(x, g, fill=0.0):
    """A strided view (N, C, Ho, Wo, kh, kw) of every window of x (padded with `fill`)."""
    xp = get_array_module(x)
    (pt, pb), (pl, pr) = g.pads
    extra_h = max(0, (g.out_hw[0] - 1) * g.stride[0] + g.dilation[0] * (g.kernel[0] - 1) + 1 - (x.shape[2] + pt + pb))
    extra_w = max(0, (g.out_hw[1] - 1) * g.stride[1] + g.dilation[1] * (g.kernel[1] - 1) + 1 - (x.shape[3] + pl + pr))
    if pt or pb or pl or pr or extra_h or extra_w:  # extra: ceil_mode windows that hang over the edge
        x = xp.pad(x, ((0, 0), (0, 0), (pt, pb + extra_h), (pl, pr + extra_w)), constant_values=fill)
    sn, sc, sh, sw = x.strides
    shape = (x.shape[0], x.shape[1], *g.out_hw, *g.kernel)
    strides = (sn, sc, sh * g.stride[0], sw * g.stride[1], sh * g.dilation[0], sw * g.dilation[1])
    return xp.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


def _fold(window_grads, g, shape):
    """Adjoint of _windows: add each window's values back where they came from. Returns (N, C, H, W)."""
    xp = get_array_module(window_grads)
    (pt, pb), (pl, pr) = g.pads
    n, c = shape[:2]
    ph = max(g.padded_hw[0], (g.out_hw[0] - 1) * g.stride[0] + g.dilation[0] * (g.kernel[0] - 1) + 1)
    pw = max(g.padded_hw[1], (g.out_hw[1] - 1) * g.stride[1] + g.dilation[1] * (g.kernel[1] - 1) + 1)
    out = xp.zeros((n, c, ph, pw), dtype=window_grads.dtype)
    ho, wo = g.out_hw
    for i in range(g.kernel[0]):
        top = i * g.dilation[0]
        for j in range(g.kernel[1]):
            left = j * g.dilation[1]
            out[:, :, top:top + g.stride[0] * (ho - 1) + 1:g.stride[0],
                left:left + g.stride[1] * (wo - 1) + 1:g.stride[1]] += window_grads[:, :, :, :, i, j]
    return out[:, :, pt:pt + g.in_hw[0], pl:pl + g.in_hw[1]]


def _im2col(x, g):
    """(N * Ho * Wo, C * kh * kw): one row per output position, the (c, ki, kj) order of a conv weight."""
    windows = _windows(x, g).transpose(0, 2, 3, 1, 4, 5)
    return windows.reshape(-1, x.shape[1] * g.kernel[0] * g.kernel[1])


def _col2im(cols, g, shape):
    n, c = shape[:2]
    windows = cols.reshape(n, *g.out_hw, c, *g.kernel).transpose(0, 3, 1, 2, 4, 5)
    return _fold(windows, g, shape)


def _rows(y):
    """An (N, O, H, W) array as (N * H * W, O) rows: free when y is a channels-last view."""
    n, o = y.shape[:2]
    return y.transpose(0, 2, 3, 1).reshape(-1, o)


def _channels_first(rows, n, hw):
    return rows.reshape(n, *hw, rows.shape[1]).transpose(0, 3, 1, 2)


def _groups(total, groups):
    size = total // groups
    return [slice(k * size, (k + 1) * size) for k in range(groups)]


class Conv2d(Function):
    """y = conv(x, w) (+ b), with w of shape (O, C / groups, kh, kw)."""

    def __init__(self, g, groups):
        self.g, self.groups = g, groups

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        n, o = x.shape[0], w.shape[0]
        if self.groups == 1:
            cols = _im2col(x, self.g)
            out = cols @ w.reshape(o, -1).T
        else:
            out = xp.empty((n * math.prod(self.g.out_hw), o), dtype=x.dtype)
            cols = []
            for cs, os_ in zip(_groups(x.shape[1], self.groups), _groups(o, self.groups)):
                cols.append(_im2col(x[:, cs], self.g))
                out[:, os_] = cols[-1] @ w[os_].reshape(os_.stop - os_.start, -1).T
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
        return gx, gw, gy.sum((0, 2, 3)) if need[2] else None

    def release(self):
        super().release()
        self.cols = None


class Conv2dInputGrad(Function):
    """dx of a convolution from gy and w: the transposed convolution (ConvTranspose2d's forward)."""

    def __init__(self, g, groups, x_shape):
        self.g, self.groups, self.x_shape = g, groups, tuple(x_shape)

    def forward(self, gy, w):
        xp = get_array_module(gy)
        rows = _rows(gy)
        if self.groups == 1:
            return _col2im(rows @ w.reshape(w.shape[0], -1), self.g, self.x_shape)
        out = xp.empty(self.x_shape, dtype=gy.dtype)
        for cs, os_ in zip(_groups(self.x_shape[1], self.groups), _groups(w.shape[0], self.groups)):
            cols = rows[:, os_] @ w[os_].reshape(os_.stop - os_.start, -1)
            out[:, cs] = _col2im(cols, self.g, (self.x_shape[0], cs.stop - cs.start))
        return out

    def backward(self, ggx):
        gy, w = self.inputs
        need = self.needs_input_grad
        return (Conv2d(self.g, self.groups)(ggx, w) if need[0] else None,
                Conv2dWeightGrad(self.g, self.groups, w.shape)(ggx, gy) if need[1] else None)


class Conv2dWeightGrad(Function):
    """dw of a convolution from x and gy."""

    def __init__(self, g, groups, w_shape, cols=None):
        self.g, self.groups, self.w_shape, self.cols = g, groups, tuple(w_shape), cols

    def forward(self, x, gy):
        xp = get_array_module(x)
        rows = _rows(gy)
        if self.groups == 1:
            cols = self.cols if self.cols is not None else _im2col(x, self.g)
            return (rows.T @ cols).reshape(self.w_shape)
        out = xp.empty(self.w_shape, dtype=x.dtype)
        for k, (cs, os_) in enumerate(zip(_groups(x.shape[1], self.groups), _groups(self.w_shape[0], self.groups))):
            cols = self.cols[k] if self.cols is not None else _im2col(x[:, cs], self.g)
            out[os_] = (rows[:, os_].T @ cols).reshape(out[os_].shape)
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
class WindowGather(Function):
    """y[n, c, i, j] = x at window (i, j), position index[n, c, i, j] of that window (max pooling)."""

    def __init__(self, g, index):
        self.g, self.index = g, index

    def forward(self, x):
        windows = _windows(x, self.g)
        flat = windows.reshape(*windows.shape[:4], -1)
        return get_array_module(x).take_along_axis(flat, self.index[..., None], axis=-1)[..., 0]

    def backward(self, gy):
        return WindowScatter(self.g, self.index, self.inputs[0].shape)(gy)


class WindowScatter(Function):
    """Adjoint of WindowGather: each value goes back to the input element it was taken from."""

    def __init__(self, g, index, x_shape):
        self.g, self.index, self.x_shape = g, index, tuple(x_shape)

    def forward(self, gy):
        xp = get_array_module(gy)
        window_grads = xp.zeros((*gy.shape, math.prod(self.g.kernel)), dtype=gy.dtype)
        xp.put_along_axis(window_grads, self.index[..., None], gy[..., None], axis=-1)
        return _fold(window_grads.reshape(*gy.shape, *self.g.kernel), self.g, self.x_shape)

    def backward(self, ggx):
        return WindowGather(self.g, self.index)(ggx)


class WindowMean(Function):
    """Average of each window (average pooling), divided by `divisor` (a number or an (Ho, Wo) array)."""

    def __init__(self, g, divisor):
        self.g, self.divisor = g, divisor

    def forward(self, x):
        return (_windows(x, self.g).sum(axis=(4, 5)) / self.divisor).astype(x.dtype, copy=False)

    def backward(self, gy):
        return WindowMeanAdjoint(self.g, self.divisor, self.inputs[0].shape)(gy)


class WindowMeanAdjoint(Function):
    def __init__(self, g, divisor, x_shape):
        self.g, self.divisor, self.x_shape = g, divisor, tuple(x_shape)

    def forward(self, gy):
        share = (gy / self.divisor).astype(gy.dtype, copy=False)
        xp = get_array_module(gy)
        window_grads = xp.broadcast_to(share[..., None, None], (*gy.shape, *self.g.kernel))
        return _fold(window_grads, self.g, self.x_shape)

    def backward(self, ggx):
        return WindowMean(self.g, self.divisor)(ggx)


def max_pool_index(x, g):
    """Position of each window's maximum; the first one on ties, as PyTorch picks."""
    windows = _windows(x, g, fill=-np.inf)
    return windows.reshape(*windows.shape[:4], -1).argmax(axis=-1)


def pool_divisor(g, count_include_pad, dtype):
    """What each average-pooling window divides by: its size, or the (Ho, Wo) counts where they differ."""
    if count_include_pad:  # padding counts, but not the overhang of a ceil_mode window
        area = np.pad(np.ones(g.in_hw, dtype), g.pads, constant_values=1)[None, None]
        counts = _windows(area, g._replace(in_hw=area.shape[2:], pads=((0, 0), (0, 0)))).sum((4, 5))[0, 0]
    else:
        counts = _windows(np.ones((1, 1, *g.in_hw), dtype), g).sum((4, 5))[0, 0]
    full = math.prod(g.kernel)
    return full if (counts == full).all() else counts
