"""A stand-in for CuPy, so that the GPU path's plumbing is tested on machines without a GPU (CI has none).

Its arrays are NumPy arrays of a subclass that behaves, where it matters to lamina, as CuPy's do:
- mixing one with a plain NumPy array in a ufunc, a NumPy function or an assignment raises TypeError, as CuPy
  does ("Unsupported type"), so an op that builds a NumPy array (np.zeros, np.asarray, a NumPy random draw)
  next to a GPU input fails here as it would on a GPU;
- 0-d results stay arrays (CuPy never returns NumPy scalars);
- moving to the device copies (`asarray` of a NumPy array) and `.get()` copies back, so no code can rely on
  the two sharing memory;
- the random generator has CuPy's methods only (no `normal`, no `permutation`).
What it cannot catch: an op that hands a GPU array to NumPy code that converts it silently (np.asarray of a
subclass), and CuPy functions that NumPy has and CuPy lacks. The GPU run (tests/test_cuda.py on a GPU) does.
"""

import contextlib
import types

import numpy as np


class ndarray(np.ndarray):
    """A 'GPU' array."""

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self):
        return np.array(self.view(np.ndarray), copy=True)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host_arrays(inputs, f"{ufunc.__name__}.{method}")
        if out is not None:
            _refuse_host_arrays(out, f"{ufunc.__name__}.{method} out")
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*map(_plain, inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host_arrays(args, func.__name__)
        _refuse_host_arrays(tuple(kwargs.values()), func.__name__)
        result = func(*_unwrap(args), **_unwrap(kwargs))
        return _device(result)

    def __setitem__(self, index, value):
        _refuse_host_arrays((value,), "setitem")
        super().__setitem__(_unwrap(index), _plain(value))

    def __getitem__(self, index):
        return _device(super().__getitem__(_unwrap(index)))

    def item(self):
        return self.view(np.ndarray).item()

    def tolist(self):
        return self.view(np.ndarray).tolist()


def _is_host(x):
    return isinstance(x, np.ndarray) and not isinstance(x, ndarray)


def _refuse_host_arrays(values, where):
    for v in values:
        if _is_host(v):
            raise TypeError(f"Unsupported type {type(v)} (the CuPy stand-in refuses a NumPy array in {where})")
        if isinstance(v, (list, tuple)):
            _refuse_host_arrays(v, where)


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, ndarray) else x


def _unwrap(x):
    if isinstance(x, tuple):
        return tuple(_unwrap(v) for v in x)
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return _plain(x)


def _device(result):
    if isinstance(result, tuple):
        return tuple(_device(r) for r in result)
    if isinstance(result, list):
        return [_device(r) for r in result]
    if isinstance(result, np.generic):
        return np.asarray(result).view(ndarray)
    if isinstance(result, np.ndarray) and not isinstance(result, ndarray):
        return result.view(ndarray)
    return result


def _creation(name):
    make = getattr(np, name)

    def create(*args, **kwargs):
        return _device(make(*_unwrap(args), **_unwrap(kwargs)))

    create.__name__ = name
    return create


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return np.array(a, dtype=dtype, copy=True).view(ndarray)  # a transfer: never shares host memory


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    return np.array(_plain(a), dtype=dtype, copy=True, ndmin=ndmin).view(ndarray)


class _Generator:
    """CuPy's Generator: these methods only."""

    def __init__(self, seed):
        self._numpy = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64, out=None):
        return _device(self._numpy.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return _device(self._numpy.standard_normal(size, dtype=dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _device(self._numpy.uniform(low, high, size).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _device(self._numpy.integers(low, high, size, dtype=dtype, endpoint=endpoint))


class _Device:
    def __init__(self, index=0):
        self.id = index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


random = types.SimpleNamespace(default_rng=_Generator)
cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0),
)


def get_array_module(*arrays):
    return __import__(__name__, fromlist=["ndarray"])


def __getattr__(name):
    """Everything else is NumPy's, its results made 'GPU' arrays (dtypes, constants and ufuncs pass as they are)."""
    value = getattr(np, name)
    if isinstance(value, np.ufunc) or isinstance(value, type) or not callable(value):
        return value
    return _creation(name)


@contextlib.contextmanager
def installed():
    """Within the block, lamina's 'cuda' device is this stand-in."""
    from lamina import backend

    module = __import__(__name__, fromlist=["ndarray"])
    saved = backend._cupy, backend._cuda_problem, dict(backend._cuda_rngs)
    backend._cupy, backend._cuda_problem = module, None
    backend._cuda_rngs.clear()
    try:
        yield module
    finally:
        backend._cupy, backend._cuda_problem = saved[:2]
        backend._cuda_rngs.clear()
        backend._cuda_rngs.update(saved[2])
