"""Functions that make tensors: from data, filled with a constant, ranges, and random draws.

Each takes PyTorch's `device=` too: None (the default device, the CPU unless `set_default_device` changed it),
"cpu", "cuda" or "cuda:N"; the `_like` functions default to their input's device. Constants are made on the
device itself; random draws come from that device's generator (`randperm` and `multinomial` draw on the CPU).
"""

import functools
import inspect

import numpy as np

from lamina.autograd import Tensor, _InPlace, wrap
from lamina.backend import (
    CPU,
    array_module,
    as_array,
    default_float,
    device_of,
    int64,
    reserve,
    resolve_device,
    to_device,
)
from lamina.backend import generator as _generator  # the device's own, or that of a Generator passed in
from lamina.ops.shape import _shape_arg as _size  # f(2, 3) and f((2, 3)) alike


def _float_dtype(dtype):
    return default_float if dtype is None else np.dtype(dtype)


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of `data` (a number, nested list, array or tensor)."""
    if isinstance(data, Tensor):
        data = data.array
    array = _array_of(data, dtype)
    return wrap(_placed(array, device, copy=array is data), requires_grad=requires_grad)


def _placed(array, device, copy=False):
    """`array` on `device` (None: the default device, or the array's own when it is on a GPU)."""
    here = device_of(array)
    where = here if device is None and here is not CPU else resolve_device(device, "tensor")
    if here is not where:
        return to_device(array, where)
    return array.copy() if copy else array


def _array_of(data, dtype):
    try:
        return as_array(data, dtype)
    except RuntimeError:  # a list holding tensors that require grad: their values, as PyTorch takes them
        return as_array(_values(data), dtype)


def _values(data):
    if isinstance(data, Tensor):
        return data._host_array()
    return [_values(d) for d in data] if isinstance(data, (list, tuple)) else data


def as_tensor(data, dtype=None, device=None):
    """Like `tensor`, but shares memory with an array of the right dtype on the right device."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return wrap(_placed(_array_of(data, dtype), device))


def from_numpy(array):
    return wrap(np.asarray(array))


def zeros(*size, dtype=None, requires_grad=False, xp=np):
    size, dtype = _size(size), _float_dtype(dtype)
    reserve(size, dtype)  # within a budget (a model rebuilt from a file), refused before it is allocated
    return wrap(xp.zeros(size, dtype), requires_grad=requires_grad)


def empty(*size, dtype=None, requires_grad=False, xp=np):
    size, dtype = _size(size), _float_dtype(dtype)
    reserve(size, dtype)  # within a budget (a model rebuilt from a file), refused before it is allocated
    return wrap(xp.empty(size, dtype), requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad=False, xp=np):
    size, dtype = _size(size), _float_dtype(dtype)
    reserve(size, dtype)  # within a budget (a model rebuilt from a file), refused before it is allocated
    return wrap(xp.ones(size, dtype), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, xp=np):
    if dtype is None:
        dtype = as_array(fill_value).dtype
    reserve(_size((size,)), dtype)
    return wrap(xp.full(_size((size,)), fill_value, dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False, xp=None):
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, xp=xp)


def ones_like(t, dtype=None, requires_grad=False, xp=None):
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, xp=xp)


def full_like(t, fill_value, dtype=None, requires_grad=False, xp=None):
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, xp=xp)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, xp=np):
    """Integers give int64, any float gives float32, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = int64 if all(isinstance(v, int) for v in (start, end, step)) else default_float
    return wrap(xp.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, xp=np):
    return wrap(xp.linspace(start, end, steps, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, xp=np):
    return wrap(xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad=False, xp=np):
    """Uniform on [0, 1), drawn from the generator that `manual_seed` sets (or the one given)."""
    dtype = _float_dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    array = _generator(generator, _device_of_module(xp)).random(_size(size), dtype=draw_dtype)
    return wrap(array.astype(dtype, copy=False), requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False, xp=np):
    """Standard normal, drawn from the generator that `manual_seed` sets (or the one given)."""
    dtype = _float_dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    array = _generator(generator, _device_of_module(xp)).standard_normal(_size(size), dtype=draw_dtype)
    return wrap(array.astype(dtype, copy=False), requires_grad=requires_grad)


def _device_of_module(xp):
    return CPU if xp is np else resolve_device("cuda", "a random draw")


def rand_like(t, dtype=None, requires_grad=False, xp=None):
    return rand(*t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, xp=xp)


def randn_like(t, dtype=None, requires_grad=False, xp=None):
    return randn(*t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, xp=xp)


def randperm(n, generator=None, dtype=None, xp=np):
    """A random permutation of 0 .. n-1 (int64), from the generator that `manual_seed` sets (the CPU's)."""
    order = _generator(generator).permutation(int(n)).astype(int64 if dtype is None else dtype)
    return wrap(order if xp is np else xp.asarray(order))


def multinomial(input, num_samples, replacement=False, generator=None):
    """Indices drawn with probabilities proportional to `input`'s rows (weights need not sum to 1).

    >>> lamina.multinomial(lamina.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()
    [1, 1]
    """
    weights = np.asarray(input._host_array() if isinstance(input, Tensor) else input, dtype=np.float64)
    if weights.ndim not in (1, 2) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"multinomial: input must be 1-D or 2-D finite non-negative weights, got shape "
                         f"{weights.shape}")
    rows = weights.reshape(-1, weights.shape[-1])
    totals = rows.sum(axis=1)
    if (totals <= 0).any():
        raise ValueError("multinomial: a row of weights sums to zero")
    if not replacement and num_samples > (rows > 0).sum(axis=1).min():
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from "
                         f"{int((rows > 0).sum(axis=1).min())} non-zero weights")
    rng = _generator(generator)
    picks = np.stack([rng.choice(len(p), size=num_samples, replace=replacement, p=p / p.sum()) for p in rows])
    picks = picks.reshape(*weights.shape[:-1], num_samples).astype(np.int64)
    on_gpu = isinstance(input, Tensor) and input.device is not CPU
    return input.new_tensor(picks, dtype=np.int64) if on_gpu else wrap(picks)


def randint(low, high=None, size=(), generator=None, dtype=None, xp=np):
    """Integers in [low, high); randint(high, size) draws from [0, high), as in PyTorch."""
    if high is None:
        low, high = 0, low
    rng = _generator(generator, _device_of_module(xp))
    return wrap(rng.integers(low, high, size=_size((size,)), dtype=np.dtype(dtype or int64)))


def _legacy_constructor(name, dtype):
    def construct(*data):
        """PyTorch's legacy typed constructor: from a list (or array), or sizes giving a zero-filled tensor."""
        if len(data) == 1 and not isinstance(data[0], int):
            return tensor(data[0], dtype=dtype)
        return Tensor(*data, dtype=dtype)

    construct.__name__ = construct.__qualname__ = name
    return construct


FloatTensor = _legacy_constructor("FloatTensor", np.float32)
DoubleTensor = _legacy_constructor("DoubleTensor", np.float64)
LongTensor = _legacy_constructor("LongTensor", np.int64)
IntTensor = _legacy_constructor("IntTensor", np.int32)
BoolTensor = _legacy_constructor("BoolTensor", np.bool_)
ByteTensor = _legacy_constructor("ByteTensor", np.uint8)


def _factory(make, takes_out, like=False):
    """`make` with PyTorch's `device=` and, where PyTorch has it, `out=`: the array module of the device is
    handed to `make` as `xp` (the `_like` functions default to their input's device)."""
    @functools.wraps(make)
    def made(*args, device=None, out=None, **kwargs):
        if kwargs.get("xp") is not None:  # called by another creation function that chose already
            return make(*args, **kwargs)
        if device is None and out is not None:
            where = out.device
        elif device is None and like and isinstance(args[0], Tensor):
            where = args[0].device
        else:
            where = resolve_device(device, make.__name__)
        kwargs["xp"] = np if where is CPU else array_module(where)
        if out is None:
            return make(*args, **kwargs)
        if not takes_out:
            raise TypeError(f"{make.__name__}() got an unexpected keyword argument 'out'")
        return _write_out(make, args, kwargs, out)

    return made


def _write_out(make, args, kwargs, out):
    """PyTorch's `zeros(2, 3, out=t)`: the values go into t (same object), in t's dtype unless dtype= is given."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{make.__name__}(): out= must be a tensor, not {type(out).__name__}")
    if "dtype" in inspect.signature(make).parameters:
        kwargs.setdefault("dtype", out.dtype)
    made = make(*args, **kwargs)
    if out.requires_grad:
        raise RuntimeError(f"{make.__name__}(): out= cannot be a tensor that requires grad")
    if out.numel() == 0 and made.shape != out.shape:  # PyTorch resizes an empty out to the result
        out.array = kwargs["xp"].empty(made.shape, out.dtype)
    if made.shape != out.shape:
        raise RuntimeError(f"{make.__name__}(): out= has shape {out.shape}, the result {made.shape}")
    return out._in_place(_InPlace(f"{make.__name__}(out=)"), lambda _: made)


for _name in ("zeros_like", "ones_like", "full_like", "rand_like", "randn_like"):
    globals()[_name] = _factory(globals()[_name], takes_out=False, like=True)
for _name in ("zeros", "empty", "ones", "full", "arange", "linspace", "eye", "rand", "randn", "randperm", "randint"):
    globals()[_name] = _factory(globals()[_name], takes_out=True)
