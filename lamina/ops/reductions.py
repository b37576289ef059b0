"""Reductions over dims, and the softmax family that normalizes along one."""

import builtins
import math
from collections import namedtuple

from lamina.autograd import Function, Tensor, _make, record, recording
from lamina.backend import get_array_module
from lamina.ops.elementwise import _floating, exp, maximum, minimum
from lamina.ops.shape import BroadcastTo, _dim, gather, reshape, squeeze

values_indices = namedtuple("values_indices", ["values", "indices"])


def _axes(dim, ndim, op):
    """`dim` (None, int or sequence) as a sorted tuple of non-negative axes; None means all."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(sorted({_dim(d, ndim, op) for d in dims}))


def _keepdim_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _unreduce(gy, shape, axes):
    """Spread a reduced gradient back over the input's shape."""
    gy = reshape(gy, _keepdim_shape(shape, axes))
    return gy if gy.shape == shape else BroadcastTo(shape)(gy)


class Sum(Function):
    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, a):
        return a.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return _unreduce(gy, self.inputs[0].shape, self.axes)


class Mean(Function):
    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, a):
        self.count = math.prod(a.shape[axis] for axis in self.axes)
        return a.sum(axis=self.axes, keepdims=self.keepdim) / self.count  # a.mean() costs more in Python

    def backward(self, gy):
        return _unreduce(gy, self.inputs[0].shape, self.axes) / self.count


class Amax(Function):
    """Max over dims; tied maxima share the gradient evenly, as in PyTorch's amax."""

    def __init__(self, axes, keepdim, take_min=False):
        self.axes, self.keepdim, self.take_min = axes, keepdim, take_min

    def forward(self, a):
        reduce = a.min if self.take_min else a.max
        return reduce(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        y = self.output.data.reshape(_keepdim_shape(x.shape, self.axes))
        share = (x.data == y).astype(gy.dtype)
        share /= share.sum(axis=self.axes, keepdims=True)  # tied maxima split the gradient
        share = _make(share)
        return _unreduce(gy, x.shape, self.axes) * share


class LogSumExp(Function):
    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, a):
        xp = get_array_module(a)
        m = a.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # a row of -inf stays -inf instead of NaN
        y = xp.log(xp.exp(a - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdim else y.squeeze(self.axes)

    def backward(self, gy):
        x = self.inputs[0]
        y = reshape(self.output, _keepdim_shape(x.shape, self.axes))
        return _unreduce(gy, x.shape, self.axes) * exp(x - y)


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        xp = get_array_module(a)
        e = xp.exp(a - a.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        return e

    def backward(self, gy):
        y = self.output
        return y * (gy - (gy * y).sum(self.axis, keepdim=True))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        xp = get_array_module(a)
        shifted = a - a.max(axis=self.axis, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return shifted

    def backward(self, gy):
        return gy - exp(self.output) * gy.sum(self.axis, keepdim=True)


# --- the functions ------------------------------------------------------------------------------
def sum(x, dim=None, keepdim=False):
    return Sum(_axes(dim, x.ndim, "sum"), keepdim)(x)


def mean(x, dim=None, keepdim=False):
    return Mean(_axes(dim, x.ndim, "mean"), keepdim)(_floating(x))


def var(x, dim=None, *, correction=1, keepdim=False):
    """Variance with PyTorch's default Bessel correction (divide by n - 1)."""
    x = _floating(x)
    axes = _axes(dim, x.ndim, "var")
    count = math.prod(x.shape[axis] for axis in axes)
    centered = x - mean(x, axes, keepdim=True)
    return sum(centered * centered, axes, keepdim) / builtins.max(count - correction, 0)


def amax(x, dim=None, keepdim=False):
    return Amax(_axes(dim, x.ndim, "amax"), keepdim)(x)


def amin(x, dim=None, keepdim=False):
    return Amax(_axes(dim, x.ndim, "amin"), keepdim, take_min=True)(x)


def _select(x, dim, keepdim, take_min):
    """(values, indices) along one dim; the gradient goes to the chosen index only, as in PyTorch."""
    d = _dim(dim, x.ndim, "min" if take_min else "max")
    index = (x.data.argmin if take_min else x.data.argmax)(axis=d, keepdims=True)
    values = gather(x, d, index)
    if not keepdim:
        values, index = squeeze(values, d), index.squeeze(d)
    return values_indices(values, _make(index))


def max(x, dim=None, keepdim=False):
    """max() over all elements; max(dim) gives (values, indices); max(x, other) is maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return amax(x) if dim is None else _select(x, dim, keepdim, take_min=False)


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return amin(x) if dim is None else _select(x, dim, keepdim, take_min=True)


def logsumexp(x, dim, keepdim=False):
    return LogSumExp(_axes(dim, x.ndim, "logsumexp"), keepdim)(_floating(x))


def softmax(x, dim):
    return Softmax(_dim(dim, x.ndim, "softmax"))(_floating(x))


def log_softmax(x, dim):
    return LogSoftmax(_dim(dim, x.ndim, "log_softmax"))(_floating(x))


class ArgMax(Function):
    """Index of the first maximum (or minimum) along `axis`, or of the flattened input when axis is None.

    Never called: like comparisons, the indices stay outside the graph; this only names the op to
    `record_ops` (ONNX export)."""

    def __init__(self, axis, keepdim, take_min=False):
        self.axis, self.keepdim, self.take_min = axis, keepdim, take_min

    def forward(self, a):
        select = a.argmin if self.take_min else a.argmax
        if self.axis is None:
            return select().astype("int64")
        return select(axis=self.axis, keepdims=self.keepdim).astype("int64")


def _arg(x, dim, keepdim, take_min):
    fn = ArgMax(None if dim is None else _dim(dim, x.ndim, "argmin" if take_min else "argmax"), keepdim, take_min)
    out = _make(get_array_module(x.data).asarray(fn.forward(x.data)))  # a 0-d array, not a NumPy scalar
    if recording():
        record(fn, (x,), out)
    return out


def argmax(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, take_min=False)


def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, take_min=True)
