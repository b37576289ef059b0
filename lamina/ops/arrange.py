"""Ops that rearrange elements: flip and rotate, move dims, tile and repeat, take apart, diagonals, differences.

All but `Flip` are compositions of the primitives in `shape` (reshape, broadcast, permute, getitem, cat), so
their gradients, second ones included, come from those.
"""

import numpy as np

from lamina.autograd import Function, Tensor, as_operand, wrap
from lamina.backend import get_array_module
from lamina.ops.shape import _dim, _shape_arg, broadcast_to, cat, getitem, index_put, permute, reshape, transpose


def _input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a tensor, not {type(x).__name__}")
    return x


def _dims(dims, ndim, op):
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    axes = tuple(_dim(int(d), ndim, op) for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dims {tuple(dims)} name the same dim twice")
    return axes


class Flip(Function):
    saved = ()

    def __init__(self, axes):
        self.axes = axes

    def forward(self, a):
        return get_array_module(a).flip(a, self.axes).copy()  # its own memory, as PyTorch's (not a view)

    def backward(self, gy):
        return Flip(self.axes)(gy)


def flip(input, dims):
    """input with the order of elements reversed along each of `dims`.

    >>> lamina.flip(lamina.tensor([[1, 2], [3, 4]]), [0, 1]).tolist()
    [[4, 3], [2, 1]]
    """
    x = _input(input, "flip")
    return Flip(_dims(dims, x.ndim, "flip"))(x) if x.ndim else x


def fliplr(input):
    if input.ndim < 2:
        raise ValueError(f"fliplr: input must have at least 2 dims, got shape {input.shape}")
    return flip(input, 1)


def flipud(input):
    if input.ndim < 1:
        raise ValueError("fliplr: input must have at least 1 dim, got a 0-d tensor")
    return flip(input, 0)


def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane of `dims`, from the first dim towards the second (as NumPy).

    >>> lamina.rot90(lamina.tensor([[1, 2], [3, 4]])).tolist()
    [[2, 4], [1, 3]]
    """
    x = _input(input, "rot90")
    if len(dims) != 2 or x.ndim < 2:
        raise ValueError(f"rot90: needs two dims of a tensor of at least 2 dims, got dims {dims}, shape {x.shape}")
    a, b = _dims(dims, x.ndim, "rot90")
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return flip(x, (a, b))
    return transpose(flip(x, b), a, b) if k == 1 else flip(transpose(x, a, b), b)


def movedim(input, source, destination):
    """Move dims `source` to positions `destination`, the others keeping their order."""
    x = _input(input, "movedim")
    source, destination = _dims(source, x.ndim, "movedim"), _dims(destination, x.ndim, "movedim")
    if len(source) != len(destination):
        raise ValueError(f"movedim: {len(source)} source dims for {len(destination)} destinations")
    order = [d for d in range(x.ndim) if d not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return permute(x, *order)


moveaxis = movedim


def swapaxes(input, axis0, axis1):
    return transpose(_input(input, "swapaxes"), axis0, axis1)


swapdims = swapaxes


def ravel(input):
    return reshape(_input(input, "ravel"), -1)


def tile(input, dims):
    """input repeated dims[i] times along each dim i; missing leading dims count as 1, on either side.

    >>> lamina.tile(lamina.tensor([1, 2]), (2,)).tolist()
    [1, 2, 1, 2]
    """
    x = _input(input, "tile")
    reps = _shape_arg((dims,))
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: repetitions must not be negative, got {reps}")
    reps = (1,) * (x.ndim - len(reps)) + reps
    x = reshape(x, (1,) * (len(reps) - x.ndim) + x.shape)
    # (1, n0, 1, n1, ...) broadcast to (r0, n0, r1, n1, ...) then merged: out[i * n + j] = x[j]
    interleaved = reshape(x, tuple(v for n in x.shape for v in (1, n)))
    spread = broadcast_to(interleaved, tuple(v for r, n in zip(reps, x.shape) for v in (r, n)))
    return reshape(spread, tuple(r * n for r, n in zip(reps, x.shape)))


def repeat(input, *sizes):
    """Tensor.repeat: tile with at least as many sizes as input has dims, as PyTorch insists."""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise ValueError(f"repeat: {len(sizes)} repetitions given for a tensor of {input.ndim} dims (shape "
                         f"{input.shape}); give at least one per dim")
    return tile(input, sizes)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (or slice along `dim`) repeated `repeats` times in place; with the input flattened when dim
    is None. repeats is an int or one count per element; repeat_interleave(counts) repeats 0, 1, 2, ....

    >>> lamina.repeat_interleave(lamina.tensor([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    """
    x = _input(input, "repeat_interleave")
    if repeats is None:  # the one-argument form: input holds the counts
        return repeat_interleave(wrap(get_array_module(x.array).arange(x.shape[0] if x.ndim else 1)), x)
    if dim is None:
        x, dim = reshape(x, -1), 0
    d = _dim(dim, x.ndim, "repeat_interleave")
    # on the host: the counts decide the result's shape (getitem moves the index to x's device)
    counts = repeats._host_array() if isinstance(repeats, Tensor) else np.asarray(repeats)
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or counts.size not in (1, x.shape[d]) or (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be a non-negative int or one per element of dim {dim} "
                         f"({x.shape[d]}), got {counts.tolist()}")
    index = np.repeat(np.arange(x.shape[d]), counts.reshape(-1) if counts.size > 1 else int(counts.reshape(-1)[0]))
    return getitem(x, (slice(None),) * d + (index,))


def select(input, dim, index):
    """The slice at `index` of `dim`, that dim removed: input[..., index, ...]."""
    x = _input(input, "select")
    d = _dim(dim, x.ndim, "select")
    if not -x.shape[d] <= index < x.shape[d]:
        raise IndexError(f"select: index {index} is out of range for dim {dim} of size {x.shape[d]}")
    return getitem(x, (slice(None),) * d + (int(index),))


def unbind(input, dim=0):
    """The slices along `dim`, as a tuple, that dim removed."""
    x = _input(input, "unbind")
    d = _dim(dim, x.ndim, "unbind")
    return tuple(select(x, d, i) for i in range(x.shape[d]))


def narrow(input, dim, start, length):
    """`length` entries of `dim` from `start` (which may count from the end)."""
    x = _input(input, "narrow")
    d = _dim(dim, x.ndim, "narrow")
    start = int(start) + (x.shape[d] if start < 0 else 0)
    if not 0 <= start <= start + length <= x.shape[d]:
        raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} of size {x.shape[d]}")
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


def diag(input, diagonal=0):
    """A 1-D input becomes a square matrix with it on a diagonal; a 2-D input gives that diagonal.

    >>> lamina.diag(lamina.tensor([[1, 2], [3, 4]])).tolist(), lamina.diag(lamina.tensor([1, 2])).tolist()
    ([1, 4], [[1, 0], [0, 2]])
    """
    x = _input(input, "diag")
    k = int(diagonal)
    if x.ndim == 1:
        n = x.shape[0] + abs(k)
        rows = np.arange(x.shape[0]) + max(-k, 0)
        zeros = wrap(get_array_module(x.array).zeros((n, n), dtype=x.dtype))
        return index_put(zeros, (rows, rows + k), x)
    if x.ndim != 2:
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {x.shape}")
    rows = np.arange(max(0, min(x.shape[0] + min(k, 0), x.shape[1] - max(k, 0)))) + max(-k, 0)
    return getitem(x, (rows, rows + k))


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along `dim` (out[i] = x[i + 1] - x[i]), after prepend and append are joined.

    >>> lamina.diff(lamina.tensor([1, 4, 9, 16])).tolist()
    [3, 5, 7]
    """
    x = _input(input, "diff")
    d = _dim(dim, x.ndim, "diff")
    parts = [as_operand(p, like=x) for p in (prepend, x, append) if p is not None]
    x = cat(parts, d) if len(parts) > 1 else x
    for _ in range(n):
        ahead = getitem(x, (slice(None),) * d + (slice(1, None),))
        behind = getitem(x, (slice(None),) * d + (slice(None, -1),))
        x = wrap(ahead.array != behind.array) if x.dtype == np.bool_ else ahead - behind
    return x
