"""Reductions over dims, and the softmax family that normalizes along one."""

import builtins
import math
from collections import namedtuple

import numpy as np

from lamina.autograd import Function, Tensor, record, recording, wrap
from lamina.backend import get_array_module
from lamina.ops.arrange import flip
from lamina.ops.elementwise import _floating, exp, maximum, minimum, where
from lamina.ops.shape import BroadcastTo, _dim, cat, gather, getitem, permute, reshape, squeeze, unsqueeze

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
    (10.0, [4.0, 6.0], lamina.Size([2, 1]))
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


# --- products, truth, counts and running sums (issue 12) ------------------------------------------------
class CumSum(Function):
    """Running sums along `axis`, from the start or (reverse) from the end; each is the other's adjoint."""

    saved = ()

    def __init__(self, axis, reverse=False):
        self.axis, self.reverse = axis, reverse

    def forward(self, a):
        xp = get_array_module(a)
        if self.reverse:
            return xp.flip(xp.flip(a, self.axis).cumsum(axis=self.axis), self.axis).copy()
        return a.cumsum(axis=self.axis)

    def backward(self, gy):
        return CumSum(self.axis, not self.reverse)(gy)


def cumsum(input, dim, *, dtype=None):
    """Running sums along `dim`; integers and bools sum into int64, as in PyTorch.

    >>> lamina.cumsum(lamina.tensor([1, 2, 3]), 0).tolist()
    [1, 3, 6]
    """
    return _running(CumSum, "cumsum", input, dim, dtype)


class CumProd(Function):
    """Running products along `axis`."""

    saved = ("inputs", "output")

    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        return a.cumprod(axis=self.axis)

    def backward(self, gy):
        x, y = self.inputs[0], self.output
        if not (x.array == 0).any():  # d y_j / d x_k = y_j / x_k for j >= k
            return CumSum(self.axis, reverse=True)(gy * y) / x
        return _cumprod_grad_with_zeros(x, gy, self.axis)


def _cumprod_grad_with_zeros(x, gy, axis):
    """sum over j >= k of gy_j * prod(x_i, i <= j, i != k), for every k at once: the running products of n
    copies of x, copy k with x_k set to 1 (n times the memory; only inputs holding zeros come here)."""
    n, xp = x.shape[axis], get_array_module(x.array)
    shape = [1] * (x.ndim + 1)
    shape[0], shape[axis + 1] = n, n
    left_out = wrap(xp.eye(n, dtype=bool).reshape(shape))  # copy k, position i: i == k
    products = cumprod(where(left_out, 1.0, unsqueeze(x, 0)), axis + 1)
    later = wrap(xp.triu(xp.ones((n, n), dtype=gy.dtype)).reshape(shape))  # copy k, position j: j >= k
    grads = sum(products * unsqueeze(gy, 0) * later, axis + 1)  # (k, the other dims)
    return permute(grads, *range(1, axis + 1), 0, *range(axis + 1, x.ndim))


def cumprod(input, dim, *, dtype=None):
    """Running products along `dim`; exact gradients even where the input holds zeros."""
    return _running(CumProd, "cumprod", input, dim, dtype)


def _running(op, name, input, dim, dtype):
    """cumsum and cumprod alike: in `dtype` if given, integers and bools in int64, a 0-d tensor as it is."""
    x = input if dtype is None else input.to(dtype)
    if x.ndim == 0:
        return x
    if x.dtype.kind in "biu" and x.dtype != np.int64:
        x = x.to(np.int64)
    return op(_dim(dim, x.ndim, name))(x)


class Prod(Function):
    """The product along one axis; each input's gradient is the product of all the others (no division, so
    zeros are exact)."""

    def __init__(self, axis, keepdim):
        self.axis, self.keepdim = axis, keepdim

    def forward(self, a):
        return a.prod(axis=self.axis, keepdims=self.keepdim)

    def backward(self, gy):
        x, axis = self.inputs[0], self.axis
        ones = wrap(get_array_module(x.array).ones(_keepdim_shape(x.shape, (axis,)), dtype=x.dtype))

        def before(t):  # product of the entries before each position
            return cumprod(cat([ones, getitem(t, (slice(None),) * axis + (slice(None, -1),))], axis), axis)

        others = before(x) * flip(before(flip(x, axis)), axis)
        return _unreduce(gy, x.shape, (axis,)) * others


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """The product of all elements, or along `dim`; integers and bools multiply into int64.

    >>> lamina.prod(lamina.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).tolist()
    [2.0, 12.0]
    """
    x = input if dtype is None else input.to(dtype)
    if x.dtype.kind in "biu" and x.dtype != np.int64:
        x = x.to(np.int64)
    if dim is None:
        return Prod(0, False)(reshape(x, -1))
    return Prod(_dim(dim, x.ndim, "prod"), keepdim)(x) if x.ndim else x


def all(input, dim=None, keepdim=False):
    """Whether every element (along `dim`) is true (non-zero): a bool tensor."""
    return wrap(input.array.astype(bool).all(axis=_axes(dim, input.ndim, "all"), keepdims=keepdim))


def any(input, dim=None, keepdim=False):
    """Whether some element (along `dim`) is true (non-zero): a bool tensor.

    >>> lamina.tensor([[0, 1], [0, 0]]).any(dim=1).tolist()
    [True, False]
    """
    return wrap(input.array.astype(bool).any(axis=_axes(dim, input.ndim, "any"), keepdims=keepdim))


def count_nonzero(input, dim=None):
    """How many elements (along `dim`) are non-zero, as int64."""
    counts = (input.array != 0).sum(axis=_axes(dim, input.ndim, "count_nonzero"))
    return wrap(get_array_module(input.array).asarray(counts, dtype=np.int64))
