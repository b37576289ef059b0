"""Indexing by integer tensors and masks: select along a dim, write or add at indices, find the non-zeros.

Reads are `getitem` with an advanced index (its backward adds where an index repeats); additions at indices
are `GetItemGrad` and `ScatterAdd`, the adjoints of reading, whose own backward reads again. Only `Scatter`,
which overwrites, has a rule of its own.
"""

import numpy as np

from lamina.autograd import Function, Tensor, as_operand, wrap
from lamina.backend import get_array_module
from lamina.ops.elementwise import where as _where
from lamina.ops.shape import GetItemGrad, ScatterAdd, _dim, _gather_where, broadcast_to, gather, getitem


def _input(x, op, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a tensor, not {type(x).__name__}")
    return x


def _index_vector(index, size, op):
    """A 1-D (or 0-d) integer index into a dim of `size`, as an array, negative entries counted from the end."""
    array = index.array if isinstance(index, Tensor) else np.asarray(index)
    if array.dtype.kind not in "iu" or array.ndim > 1:
        raise TypeError(f"{op}: index must be a 1-D integer tensor, got {array.dtype} of shape {array.shape}")
    if array.size and (array.min() < -size or array.max() >= size):
        raise IndexError(f"{op}: index holds values outside [{-size}, {size}) for a dim of size {size}")
    return array.reshape(-1) % max(size, 1)


def index_select(input, dim, index):
    """The entries of `dim` at the positions in the 1-D `index` (repeats allowed).

    >>> lamina.index_select(lamina.tensor([[1, 2], [3, 4]]), 1, lamina.tensor([1, 1, 0])).tolist()
    [[2, 2, 1], [4, 4, 3]]
    """
    x = _input(input, "index_select")
    d = _dim(dim, x.ndim, "index_select")
    return getitem(x, (slice(None),) * d + (_index_vector(index, x.shape[d] if x.ndim else 1, "index_select"),))


def masked_select(input, mask):
    """The elements where the bool mask (broadcast with input) is true, as a 1-D tensor."""
    x = _input(input, "masked_select")
    mask = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, not {mask.dtype}")
    try:
        shape = np.broadcast_shapes(x.shape, mask.shape)
    except ValueError:
        raise ValueError(f"masked_select: mask of shape {mask.shape} does not broadcast with input of shape "
                         f"{x.shape}") from None
    return getitem(broadcast_to(x, shape), get_array_module(mask).broadcast_to(mask, shape))


def nonzero(input, *, as_tuple=False):
    """The indices of the non-zero elements: an (n, ndim) int64 tensor, or with as_tuple one 1-D tensor per dim.

    >>> lamina.nonzero(lamina.tensor([[0, 1], [1, 0]])).tolist()
    [[0, 1], [1, 0]]
    """
    array = _input(input, "nonzero").array
    found = get_array_module(array).nonzero(array.reshape(1) if array.ndim == 0 else array)
    if as_tuple:
        return tuple(wrap(i.astype(np.int64)) for i in found)
    return wrap(get_array_module(array).stack(found, axis=1).astype(np.int64).reshape(-1, array.ndim))


def argwhere(input):
    return nonzero(input)


def where(condition, input=None, other=None):
    """input where condition holds, else other; with the condition alone, nonzero(condition, as_tuple=True)."""
    if input is None and other is None:
        return nonzero(as_operand(condition), as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither")
    return _where(condition, input, other)


def _scatter_index(x, dim, index, op):
    d = _dim(dim, x.ndim, op)
    index = index.array if isinstance(index, Tensor) else get_array_module(x.array).asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, not {index.dtype}")
    if index.ndim != x.ndim or any(i > n for k, (i, n) in enumerate(zip(index.shape, x.shape)) if k != d):
        raise ValueError(f"{op}: index of shape {index.shape} does not fit input of shape {x.shape} (same number of "
                         f"dims, no larger than input outside dim {dim})")
    if index.size and (index.min() < 0 or index.max() >= x.shape[d]):
        raise IndexError(f"{op}: index holds values outside [0, {x.shape[d]}) for dim {dim}")
    return d, index


def _source(src, index, like, op):
    """src cut to index's shape (PyTorch reads only that corner of a larger src), in input's dtype."""
    src = as_operand(src)
    if src.ndim != index.ndim or any(s < i for s, i in zip(src.shape, index.shape)):
        raise ValueError(f"{op}: src of shape {src.shape} is smaller than index of shape {index.shape}")
    if src.shape != index.shape:
        src = getitem(src, tuple(slice(0, n) for n in index.shape))
    return src if src.dtype == like.dtype else src.to(like.dtype)


class Scatter(Function):
    """input with src written at the places index names along dim; what was overwritten gets no gradient."""

    saved = ()

    def __init__(self, dim, index):
        self.dim, self.index = dim, index

    def forward(self, a, src):
        out = a.copy()
        out[_gather_where(get_array_module(a), self.index, self.dim)] = src
        return out

    def backward(self, gy):
        need_a, need_src = self.needs_input_grad
        kept = get_array_module(gy.array).ones(gy.shape, dtype=gy.dtype)
        kept[_gather_where(get_array_module(kept), self.index, self.dim)] = 0
        return (gy * wrap(kept) if need_a else None,
                gather(gy, self.dim, wrap(self.index)) if need_src else None)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """A copy of input with out[index[i][j]][j] = src[i][j] for dim 0 (and so on), as torch.scatter; a number
    given as src (or value=) is written everywhere index points. reduce="add" adds instead of writing.

    >>> lamina.scatter(lamina.zeros(3), 0, lamina.tensor([2, 0]), lamina.tensor([5.0, 6.0])).tolist()
    [6.0, 0.0, 5.0]
    """
    x = _input(input, "scatter")
    if src is None or isinstance(src, (int, float, bool)):
        value = src if value is None else value
        if value is None:
            raise TypeError("scatter: give src (a tensor) or value (a number)")
        src = None
    d, index = _scatter_index(x, dim, index, "scatter")
    if src is None:
        src = wrap(get_array_module(x.array).full(index.shape, value, dtype=x.dtype))
    src = _source(src, index, x, "scatter")
    if reduce == "add":
        return x + ScatterAdd(d, index, x.shape)(src)
    if reduce is not None:
        raise ValueError(f"scatter: reduce must be None or 'add', not {reduce!r}")
    return Scatter(d, index)(x, src)


def scatter_add(input, dim, index, src):
    """input plus each src[i][j] added at out[index[i][j]][j] for dim 0 (and so on); repeated indices add up."""
    x = _input(input, "scatter_add")
    d, index = _scatter_index(x, dim, index, "scatter_add")
    return x + ScatterAdd(d, index, x.shape)(_source(src, index, x, "scatter_add"))


def index_add(input, dim, index, source, *, alpha=1):
    """input plus alpha * source[..., i, ...] added at entry index[i] of `dim`; repeated indices add up.

    >>> lamina.index_add(lamina.zeros(3), 0, lamina.tensor([0, 0, 2]), lamina.tensor([1.0, 2.0, 3.0])).tolist()
    [3.0, 0.0, 3.0]
    """
    x = _input(input, "index_add")
    d = _dim(dim, x.ndim, "index_add")
    index = _index_vector(index, x.shape[d] if x.ndim else 1, "index_add")
    source = as_operand(source, like=x)
    expected = x.shape[:d] + (len(index),) + x.shape[d + 1:]
    if source.shape != expected:
        raise ValueError(f"index_add: source has shape {source.shape}, expected {expected} (input {x.shape}, "
                         f"{len(index)} indices along dim {dim})")
    if source.dtype != x.dtype:
        source = source.to(x.dtype)
    return x + GetItemGrad((slice(None),) * d + (index,), x.shape)(source if alpha == 1 else source * alpha)
