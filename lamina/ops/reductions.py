"""Reductions over dims, and the softmax family that normalizes along one."""

import builtins
import math
from collections import namedtuple

from lamina.autograd import Function, Tensor, record, recording, wrap
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
    saved = ()

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, a):
        return a.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return _unreduce(gy, self.input_shapes[0], self.axes)


def sum(x, dim=None, keepdim=False):
    """Sum over `dim` (an int, a tuple, or None for all elements).

    >>> x = lamina.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> x.sum().item(), x.sum(dim=0).tolist(), x.sum(1, keepdim=True).shape
    (10.0, [4.0, 6.0], (2, 1))
    """
    return Sum(_axes(dim, x.ndim, "sum"), keepdim)(x)


class Mean(Function):
    saved = ()

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, a):
        self.count = math.prod(a.shape[axis] for axis in self.axes)
        return a.sum(axis=self.axes, keepdims=self.keepdim) / self.count  # a.mean() costs more in Python

    def backward(self, gy):
        return _unreduce(gy, self.input_shapes[0], self.axes) / self.count


def mean(x, dim=None, keepdim=False):
    """Mean over `dim`; integers become float32.

    >>> lamina.mean(lamina.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=1).tolist()
    [1.5, 3.5]
    """
    return Mean(_axes(dim, x.ndim, "mean"), keepdim)(_floating(x))


class Amax(Function):
    """Max over dims; tied maxima share the gradient evenly, as in PyTorch's amax."""

    saved = ("inputs", "output")

    def __init__(self, axes, keepdim, take_min=False):
        self.axes, self.keepdim, self.take_min = axes, keepdim, take_min

    def forward(self, a):
        reduce = a.min if self.take_min else a.max
        return reduce(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        y = self.output.array.reshape(_keepdim_shape(x.shape, self.axes))
        share = (x.array == y).astype(gy.dtype)
        share /= share.sum(axis=self.axes, keepdims=True)  # tied maxima split the gradient
        share = wrap(share)
        return _unreduce(gy, x.shape, self.axes) * share


def amax(x, dim=None, keepdim=False):
    return Amax(_axes(dim, x.ndim, "amax"), keepdim)(x)


def amin(x, dim=None, keepdim=False):
    return Amax(_axes(dim, x.ndim, "amin"), keepdim, take_min=True)(x)


class LogSumExp(Function):
    saved = ("inputs", "output")

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


def logsumexp(x, dim, keepdim=False):
    return LogSumExp(_axes(dim, x.ndim, "logsumexp"), keepdim)(_floating(x))


class Softmax(Function):
    saved = ("output",)

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


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along `dim`: scores into probabilities.

    >>> p = lamina.softmax(lamina.tensor([[1.0, 1.0], [0.0, 1000.0]]), dim=1)
    >>> p.tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    return Softmax(_dim(dim, x.ndim, "softmax"))(_floating(x))


class LogSoftmax(Function):
    saved = ("output",)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        xp = get_array_module(a)
        shifted = a - a.max(axis=self.axis, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return shifted

    def backward(self, gy):
        return gy - exp(self.output) * gy.sum(self.axis, keepdim=True)


def log_softmax(x, dim):
    """log(softmax(x)) along `dim`, computed stably.

    >>> lamina.log_softmax(lamina.tensor([0.0, 0.0]), 0).exp().tolist()
    [0.5, 0.5]
    """
    return LogSoftmax(_dim(dim, x.ndim, "log_softmax"))(_floating(x))


def var(x, dim=None, *, correction=1, keepdim=False):
    """Variance with PyTorch's default Bessel correction (divide by n - 1)."""
    x = _floating(x)
    axes = _axes(dim, x.ndim, "var")
    count = math.prod(x.shape[axis] for axis in axes)
    centered = x - mean(x, axes, keepdim=True)
    return sum(centered * centered, axes, keepdim) / builtins.max(count - correction, 0)


def std(x, dim=None, *, correction=1, keepdim=False):
    """Standard deviation, with PyTorch's default Bessel correction.

    >>> round(lamina.std(lamina.tensor([1.0, 2.0, 3.0, 4.0])).item(), 4)
    1.291
    """
    return var(x, dim, correction=correction, keepdim=keepdim) ** 0.5


def norm(x, p="fro", dim=None, keepdim=False):
    """The vector p-norm over `dim` (all elements when None): p = 2 (or "fro"), 1, or inf.

    >>> lamina.norm(lamina.tensor([3.0, 4.0])).item()
    5.0
    """
    x = _floating(x)
    axes = _axes(dim, x.ndim, "norm")
    if p in ("fro", 2):
        return sum(x * x, axes, keepdim) ** 0.5
    if p == 1:
        return sum(abs(x), axes, keepdim)
    if p == math.inf:
        return amax(abs(x), axes, keepdim)
    raise ValueError(f"norm: p must be 1, 2, 'fro' or inf, not {p!r}")


def _select(x, dim, keepdim, take_min):
    """(values, indices) along one dim; the gradient goes to the chosen index only, as in PyTorch."""
    d = _dim(dim, x.ndim, "min" if take_min else "max")
    index = (x.array.argmin if take_min else x.array.argmax)(axis=d, keepdims=True)
    values = gather(x, d, index)
    if not keepdim:
        values, index = squeeze(values, d), index.squeeze(d)
    return values_indices(values, wrap(index))


def max(x, dim=None, keepdim=False):
    """max() over all elements; max(dim) gives (values, indices); max(x, other) is maximum.

    >>> values, indices = lamina.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)
    >>> values.tolist(), indices.tolist()
    ([5.0, 7.0], [1, 0])
    """
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return amax(x) if dim is None else _select(x, dim, keepdim, take_min=False)


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return amin(x) if dim is None else _select(x, dim, keepdim, take_min=True)


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
    out = wrap(get_array_module(x.array).asarray(fn.forward(x.array)))  # a 0-d array, not a NumPy scalar
    if recording():
        record(fn, (x,), out)
    return out


def argmax(x, dim=None, keepdim=False):
    """Index of the largest value (over all elements, or along `dim`).

    >>> lamina.argmax(lamina.tensor([[1.0, 5.0], [7.0, 2.0]]), dim=1).tolist()
    [1, 0]
    """
    return _arg(x, dim, keepdim, take_min=False)


def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, take_min=True)
