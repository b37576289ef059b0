"""Ops that order values or pick by rank: sort, topk, median, mode, unique, running maxima, counting.

The ones that return values pick them with `gather` at the chosen indices, so the gradient goes to the chosen
elements (as in PyTorch) with no backward rule of their own; the indices are int64 tensors outside the graph.
"""

from collections import namedtuple

import numpy as np

from lamina.autograd import Tensor, wrap
from lamina.backend import get_array_module
from lamina.ops.shape import _dim, gather, reshape, squeeze

# PyTorch's torch.return_types: tuples with .values and .indices
sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])
mode_result = namedtuple("mode", ["values", "indices"])
cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])


def _input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a tensor, not {type(x).__name__}")
    return x


def _order(array, axis, descending):
    """Indices that sort `array` along axis, stably: equal values keep their order in both directions."""
    xp = get_array_module(array)
    if not descending:
        return xp.argsort(array, axis=axis, kind="stable")
    # sort the reversed array ascending and read it backwards: ties come out first-index-first
    backwards = xp.flip(xp.argsort(xp.flip(array, axis), axis=axis, kind="stable"), axis)
    return array.shape[axis] - 1 - backwards


def _along(x, dim, op):
    """x as at least 1-D (PyTorch sorts a 0-d tensor as one element) and dim as a non-negative axis."""
    return (reshape(x, 1) if x.ndim == 0 else x), _dim(dim, x.ndim, op)


def _pick(x, d, index, keepdim, result, shape=None):
    """(values, indices) at `index` (an array with a kept dim d), with d dropped unless keepdim."""
    values, index = gather(x, d, wrap(index)), wrap(index.astype(np.int64))
    if not keepdim:
        values, index = squeeze(values, d), wrap(index.array.squeeze(d))
    if shape is not None:
        values, index = reshape(values, shape), wrap(index.array.reshape(shape))
    return result(values, index)


def sort(input, dim=-1, descending=False, stable=False):
    """Values sorted along `dim` and the indices they came from; ties keep their order.

    >>> values, indices = lamina.sort(lamina.tensor([3.0, 1.0, 2.0]), descending=True)
    >>> values.tolist(), indices.tolist()
    ([3.0, 2.0, 1.0], [0, 2, 1])
    """
    x, d = _along(_input(input, "sort"), dim, "sort")
    return _pick(x, d, _order(x.array, d, descending), True, sort_result, input.shape)


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort input along `dim` (int64)."""
    x, d = _along(_input(input, "argsort"), dim, "argsort")
    return wrap(_order(x.array, d, descending).astype(np.int64).reshape(input.shape))


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) values along `dim`, largest first, with their indices.

    >>> lamina.topk(lamina.tensor([1.0, 3.0, 2.0]), 2).indices.tolist()
    [1, 2]
    """
    x, d = _along(_input(input, "topk"), dim, "topk")
    if not 0 <= k <= x.shape[d]:
        raise ValueError(f"topk: k ({k}) must lie in [0, {x.shape[d]}], the size of dim {dim}")
    index = _order(x.array, d, largest)[(slice(None),) * d + (slice(0, k),)]
    return _pick(x, d, index, True, topk_result, input.shape if input.ndim == 0 else None)


def _rank(input, position, dim, keepdim, op, result):
    """The value at sorted `position` (an int, or an array of one per slice) along dim, and its index."""
    x, d = _along(_input(input, op), dim, op)
    slice_shape = x.shape[:d] + (1,) + x.shape[d + 1:]
    xp = get_array_module(x.array)
    index = xp.take_along_axis(_order(x.array, d, False), xp.broadcast_to(xp.asarray(position), slice_shape), axis=d)
    return _pick(x, d, index, keepdim or input.ndim == 0, result, input.shape if input.ndim == 0 else None)


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest value along `dim` (k counts from 1) and its index."""
    n = input.shape[dim] if input.ndim else 1
    if not 1 <= k <= n:
        raise ValueError(f"kthvalue: k ({k}) must lie in [1, {n}], the size of dim {dim}")
    return _rank(input, k - 1, dim, keepdim, "kthvalue", kthvalue_result)


def median(input, dim=None, keepdim=False):
    """The lower median: of all elements (a value), or along `dim` (values and indices); NaN wins, as in PyTorch.

    >>> lamina.median(lamina.tensor([1.0, 4.0, 2.0, 3.0])).item()
    2.0
    """
    x = _input(input, "median")
    if dim is None:
        return _rank(reshape(x, -1), _median_position(x.array.reshape(-1), 0), 0, False, "median", median_result)[0]
    x1, d = _along(x, dim, "median")
    return _rank(x, _median_position(x1.array, d), dim, keepdim, "median", median_result)


def _median_position(array, axis):
    """Per slice, the sorted position of the lower median, or of the first NaN (sorted last) where there is one."""
    n = array.shape[axis]
    if n == 0:
        raise ValueError("median: cannot take the median of an empty dim")
    if array.dtype.kind != "f":
        return (n - 1) // 2
    nans = get_array_module(array).isnan(array).sum(axis=axis, keepdims=True)
    return get_array_module(array).where(nans > 0, n - nans, (n - 1) // 2)


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along `dim` (the smallest among equally frequent ones) and its last index.

    >>> lamina.mode(lamina.tensor([2, 1, 1, 2, 3])).indices.item()
    2
    """
    x, d = _along(_input(input, "mode"), dim, "mode")
    host = x._host_array()  # a loop over rows: on the host, whichever device holds x
    rows = np.moveaxis(host, d, -1).reshape(-1, x.shape[d])
    last = np.empty(len(rows), dtype=np.int64)
    for r, row in enumerate(rows):
        values, counts = np.unique(row, return_counts=True)
        best = values[np.argmax(counts)]
        last[r] = len(row) - 1 - np.argmax(row[::-1] == best)
    index = np.moveaxis(last.reshape(np.moveaxis(host, d, -1).shape[:-1] + (1,)), -1, d)
    index = get_array_module(x.array).asarray(index)
    return _pick(x, d, index, keepdim or input.ndim == 0, mode_result, input.shape if input.ndim == 0 else None)


def _running(input, dim, op, ufunc, result):
    x, d = _along(_input(input, op), dim, op)
    array = x._host_array()  # the indices on the host: CuPy has no maximum.accumulate (the values gather on x's device)
    best = ufunc.accumulate(array, axis=d)
    hit = array == best  # a new (or tied) best takes over the index, as in PyTorch
    if array.dtype.kind == "f":
        hit |= np.isnan(array)
    positions = np.arange(array.shape[d]).reshape((-1,) + (1,) * (array.ndim - d - 1))
    index = np.maximum.accumulate(np.where(hit, positions, 0), axis=d)
    return _pick(x, d, get_array_module(x.array).asarray(index), True, result, input.shape)


def cummax(input, dim):
    """The running maximum along `dim` and the index where each was reached (the latest among ties).

    >>> lamina.cummax(lamina.tensor([1.0, 3.0, 2.0, 3.0]), 0).indices.tolist()
    [0, 1, 1, 3]
    """
    return _running(input, dim, "cummax", np.maximum, cummax_result)


def cummin(input, dim):
    return _running(input, dim, "cummin", np.minimum, cummin_result)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (sorted), and optionally where each element went (inverse) and how often each occurs.

    >>> values, inverse, counts = lamina.unique(lamina.tensor([3, 1, 3]), return_inverse=True, return_counts=True)
    >>> values.tolist(), inverse.tolist(), counts.tolist()
    ([1, 3], [1, 0, 1], [1, 2])
    """
    x = _input(input, "unique")
    axis = None if dim is None else _dim(dim, x.ndim, "unique")
    values, inverse, counts = np.unique(x.array, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(x.shape if axis is None else (x.shape[axis],)).astype(np.int64)
    out = (wrap(values),) + (wrap(inverse),) * return_inverse + (wrap(counts.astype(np.int64)),) * return_counts
    return out if len(out) > 1 else out[0]


def bincount(input, weights=None, minlength=0):
    """How often each non-negative integer occurs in the 1-D input (or the sum of its weights).

    >>> lamina.bincount(lamina.tensor([0, 2, 2])).tolist()
    [1, 0, 2]
    """
    x = _input(input, "bincount")
    if x.ndim != 1 or x.dtype.kind not in "iu":
        raise ValueError(f"bincount: input must be a 1-D integer tensor, got {x.dtype} of shape {x.shape}")
    if x.array.size and x.array.min() < 0:
        raise ValueError("bincount: input must not hold negative values")
    if weights is None:
        return wrap(np.bincount(x.array, minlength=minlength).astype(np.int64))
    w = weights.array if isinstance(weights, Tensor) else get_array_module(x.array).asarray(weights)
    if w.shape != x.shape:
        raise ValueError(f"bincount: weights of shape {w.shape} must match input of shape {x.shape}")
    dtype = w.dtype if w.dtype.kind == "f" else np.float64
    return wrap(np.bincount(x.array, w, minlength=minlength).astype(dtype))
