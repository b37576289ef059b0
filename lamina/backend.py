"""The array module (NumPy, or CuPy on a GPU), dtypes, the one random generator, and the CPU's settings.

Op code never imports CuPy: it asks `get_array_module(array)` for the module
that owns its inputs, so a CuPy array flows through the same code. The CPU
settings are the kernel path (`set_kernels`: the NumPy reference or the
compiled kernels of `lamina.kernels`), the thread count, and flush-to-zero.
"""

import contextlib
import contextvars
import ctypes
import importlib.util
import math
import os
import platform
import sys

import numpy as np

from lamina.errors import AllocationLimitError

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
bool_ = np.dtype(np.bool_)

default_float = float32

def get_array_module(array):
    """Return the module (numpy, or cupy for an array on a GPU) that owns `array`."""
    if type(array) is np.ndarray:  # the common case first: one test on every op's hot path
        return np
    return _cupy if _on_gpu(array) else np


def is_array(obj):
    return isinstance(obj, np.ndarray) or _on_gpu(obj)


def _on_gpu(obj):
    """Whether obj is a CuPy array (one made by the user before lamina asked for CUDA counts too)."""
    if _cupy is not None:
        return isinstance(obj, _cupy.ndarray)
    return type(obj).__module__.startswith("cupy") and isinstance(obj, cuda_module().ndarray)


# --- devices -----------------------------------------------------------------------------------
# This is the one module that knows CuPy: ops ask `get_array_module(array)` (or `array_module(device)`) for the
# module that makes their arrays, and tensors move with `to_device`. CuPy is imported on the first question
# about a GPU, never by `import lamina`.
_cupy = None  # the cupy module, once a GPU has been asked for and found usable
_cuda_problem = None  # why CUDA is not usable, once asked and found so (a one-line message)


def _import_cupy():
    import cupy  # the tests replace this function to plug in a stand-in array module

    return cupy


def cuda_module(what="CUDA"):
    """CuPy, checked usable: installed and seeing a GPU. Otherwise one RuntimeError saying what to do."""
    global _cupy, _cuda_problem
    if _cupy is not None:
        return _cupy
    if _cuda_problem is None:
        try:
            module = _import_cupy()
        except ImportError:
            _cuda_problem = ("CUDA needs CuPy, which is not installed: pip install 'lamina[cuda]' (CuPy for CUDA 13; "
                             "for CUDA 12: pip install cupy-cuda12x)")
        else:
            try:
                count = module.cuda.runtime.getDeviceCount()
            except Exception as e:  # CuPy's CUDARuntimeError: no driver, or one too old for its CUDA
                count, reason = 0, str(e).splitlines()[0] if str(e) else type(e).__name__
            else:
                reason = "CUDA sees no GPU"
            if count:
                _cupy = module
                return _cupy
            _cuda_problem = f"CuPy is installed but no CUDA GPU is usable ({reason})"
    raise RuntimeError(f"{what}: {_cuda_problem}")


def cuda_is_available():
    """True when CuPy is installed and sees a GPU (as torch.cuda.is_available())."""
    if _cupy is None and _cuda_problem is None and importlib.util.find_spec("cupy") is None:
        return False  # not installed: answered without importing anything
    try:
        cuda_module()
    except RuntimeError:
        return False
    return True


def cuda_device_count():
    return cuda_module().cuda.runtime.getDeviceCount() if cuda_is_available() else 0


class device:
    """Where a tensor lives, as torch.device: device("cpu"), device("cuda"), device("cuda:1"), device("cuda", 1).

    "cuda" is a GPU through CuPy (`pip install 'lamina[cuda]'`); asking for it where CuPy or a GPU is missing
    is one clear error, never a silent fallback to the CPU. "mps" and "xpu" are PyTorch's names that lamina
    knows but does not run on.
    """

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type  # torch.device(0) is the first GPU
        kind, _, number = str(type).partition(":")
        if kind not in ("cpu", "cuda", "mps", "xpu") or (number and not number.isdigit()):
            raise ValueError(f"device: expected 'cpu' or 'cuda[:index]', got {type!r}")
        self.type, self.index = kind, int(number) if number else index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __eq__(self, other):
        try:
            other = device(other)
        except (ValueError, TypeError):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


CPU = device("cpu")
_cuda_devices = {}  # index -> device("cuda", index): one object per GPU, so that device_of allocates nothing


def resolve_device(where, what):
    """The device that `where` names (None: the default device), checked usable; else one clear error.

    A GPU without an index is the current one (cuda:0 unless changed), as PyTorch places tensors."""
    if where is None:
        return _default_device
    if isinstance(where, str) and where == "cpu":
        return CPU
    dev = device(where)
    if dev.type == "cpu":
        return CPU
    if dev.type != "cuda":
        raise RuntimeError(f"{what}: device {str(dev)!r} is not supported: lamina runs on 'cpu' and 'cuda'")
    cupy = cuda_module(f"{what}: device {str(dev)!r}")
    current = cupy.cuda.runtime.getDevice()
    index = current if dev.index is None else dev.index
    count = cupy.cuda.runtime.getDeviceCount()
    if index >= count:
        raise RuntimeError(f"{what}: device {str(dev)!r} does not exist: CUDA sees {count} GPU(s)")
    if index != current:  # CuPy computes on the current GPU: lamina does not switch GPUs op by op
        raise RuntimeError(f"{what}: device {str(dev)!r} is not the current GPU (cuda:{current}): lamina computes "
                           f"on one GPU at a time; lamina.cuda.set_device({index}) makes it current")
    return _cuda_device(index)


def _cuda_device(index):
    dev = _cuda_devices.get(index)
    if dev is None:
        dev = _cuda_devices[index] = device("cuda", index)
    return dev


def device_of(array):
    """The device that holds `array`."""
    if type(array) is np.ndarray:
        return CPU
    return _cuda_device(array.device.id) if _on_gpu(array) else CPU


def array_module(where):
    """The array module that makes arrays on device `where` (numpy for the CPU, cupy for a GPU)."""
    return np if resolve_device(where, "array_module") is CPU else _cupy


def to_device(array, where, what="to"):
    """`array` on device `where`: itself when it is there already, else a copy there."""
    dev = resolve_device(where, what)
    if device_of(array) is dev:  # devices are one object each
        return array
    if dev is CPU:
        return array.get()
    with _cupy.cuda.Device(dev.index):
        return _cupy.asarray(array)


_default_device = CPU


def set_default_device(where):
    """As torch.set_default_device: where tensors are made when no `device=` is given (None: the CPU)."""
    global _default_device
    _default_device = CPU if where is None else resolve_device(where, "set_default_device")


def get_default_device():
    return _default_device


def synchronize(where=None):
    """Wait for every GPU op queued so far (as torch.cuda.synchronize); nothing to wait for on the CPU."""
    if _cupy is not None:
        dev = resolve_device("cuda" if where is None else where, "synchronize")
        with _cupy.cuda.Device(dev.index):
            _cupy.cuda.Device().synchronize()


# --- random numbers ----------------------------------------------------------------------------
_rng = np.random.default_rng()
_cuda_rngs = {}  # GPU index -> that GPU's generator (CuPy's), made on first use from _cuda_seed
_cuda_seed = None


def manual_seed(seed):
    """Seed the generators behind every random draw in lamina (init, dropout, shuffling), on every device."""
    global _rng
    _rng = np.random.default_rng(seed)
    cuda_manual_seed(seed)


def cuda_manual_seed(seed):
    """Seed the GPUs' generators only (as torch.cuda.manual_seed_all)."""
    global _cuda_seed
    _cuda_seed = int(seed)
    _cuda_rngs.clear()


def generator(source=None, device=None):
    """The generator behind a draw on `device` (default the CPU): that of a lamina.Generator passed as
    `generator=`, else the device's own. The CPU's is NumPy's; a GPU's is CuPy's, with the same methods
    for what lamina draws (random, standard_normal, uniform, normal, integers)."""
    if device is None or device is CPU:
        return _rng if source is None else source.numpy_generator
    if source is not None:
        return source.device_generator(device)
    rng = _cuda_rngs.get(device.index)
    if rng is None:
        seed = _cuda_seed if _cuda_seed is not None else int(_rng.integers(2**62))
        with _cupy.cuda.Device(device.index):
            rng = _cuda_rngs[device.index] = _cupy.random.default_rng(seed + device.index)
    return rng


def generator_for(array, source=None):
    """The generator for a draw shaped like, and on the device of, `array`."""
    if capturing:
        raise RuntimeError("a random draw (dropout, a random init) cannot be captured into a CUDA graph: every replay "
                           "would reuse one draw; run it outside the graph, or put dropout layers in eval mode")
    return generator(source, device_of(array))


capturing = False  # True while lamina.cuda.graph records GPU work into a CUDA graph


class Generator:
    """A random generator of its own, as torch.Generator: pass it as `generator=` to the random functions.

    >>> g = lamina.Generator().manual_seed(7)
    >>> a = lamina.randn(3, generator=g).tolist()
    >>> a == lamina.randn(3, generator=lamina.Generator().manual_seed(7)).tolist()
    True
    """

    def __init__(self, device="cpu"):
        self.device = resolve_device(device, "Generator")
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**62))

    def manual_seed(self, seed):
        self._seed = int(seed)
        self.numpy_generator = np.random.default_rng(self._seed)
        self._device_generator = None
        return self

    def initial_seed(self):
        return self._seed

    def device_generator(self, where):
        """CuPy's generator on the GPU this generator was made for, seeded alike."""
        if where != self.device:
            raise RuntimeError(f"a generator for {self.device} was given for a draw on {where}")
        if self._device_generator is None:
            with _cupy.cuda.Device(where.index):
                self._device_generator = _cupy.random.default_rng(self._seed)
        return self._device_generator


# Bytes that tensor creation may still allocate, or None (no limit): set while a model is rebuilt from a file,
# so that an architecture declaring huge layers is refused before their weights exist.
_allocation_left = contextvars.ContextVar("lamina_allocation_left", default=None)


@contextlib.contextmanager
def allocation_budget(nbytes):
    """Within the block, `reserve` (called by zeros, empty, ones, full) refuses to go past `nbytes` in all."""
    token = _allocation_left.set([int(nbytes)])
    try:
        yield
    finally:
        _allocation_left.reset(token)


def reserve(shape, dtype):
    """Count an allocation of `shape` and `dtype` against the budget, raising AllocationLimitError past it."""
    left = _allocation_left.get()
    if left is None or any(int(n) < 0 for n in shape):  # a negative size: NumPy's error says it best
        return
    nbytes = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
    if nbytes > left[0]:
        raise AllocationLimitError(f"a tensor of shape {tuple(shape)} and dtype {np.dtype(dtype)} ({nbytes:,} "
                                   f"bytes) goes past the {left[0]:,} bytes left to allocate")
    left[0] -= nbytes


def as_array(data, dtype=None):
    """Turn `data` into an array following lamina's dtype rules.

    Python floats (and lists holding any) become float32, Python ints int64,
    bools bool; NumPy and CuPy arrays keep their dtype unless `dtype` is given.
    """
    if dtype is not None:
        dtype = np.dtype(dtype)
    if is_array(data):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    array = np.asarray(data)
    if dtype is None and array.dtype == float64 and not isinstance(data, np.generic):
        dtype = default_float  # a Python float means "the default float", as in PyTorch
    if dtype is None and array.dtype.kind == "i":
        dtype = int64
    if dtype is None and array.dtype.kind not in "biuf":
        raise TypeError(f"cannot make a tensor from {type(data).__name__} with dtype {array.dtype}")
    return array if dtype is None or array.dtype == dtype else array.astype(dtype)


def cache_freed_memory(limit_bytes=1 << 30):
    """Keep up to `limit_bytes` of freed memory in the process for reuse, instead of handing it back.

    NumPy allocates every large temporary (an activation, an im2col buffer) with
    mmap and returns it to the system when freed, so the next training step
    page-faults the same memory in again: about a quarter of a small CNN's step
    time. Raising glibc's mmap and trim thresholds lets malloc reuse those
    blocks. lamina calls this once at import; `cache_freed_memory(0)` restores
    glibc's defaults. Does nothing where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    limit = int(limit_bytes) if limit_bytes else 128 * 1024  # glibc's starting defaults
    return bool(mallopt(m_mmap_threshold, min(limit, 1 << 30) if limit_bytes else limit)) and bool(
        mallopt(m_trim_threshold, limit))


# --- subnormal floats ---------------------------------------------------------------------------------------------
_MXCSR_FLUSH_BITS = (1 << 15) | (1 << 6)  # FTZ: subnormal results become 0; DAZ: subnormal inputs read as 0
_flush_listeners = []  # called with the new mode: lamina.kernels re-applies it on its worker threads


def _libm():
    """glibc's libm on x86-64 Linux, where fenv_t is the 28-byte x87 environment then the 4-byte MXCSR; else None."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
            and platform.libc_ver()[0] == "glibc"):
        return None  # other fenv_t layouts (musl, macOS, arm64's FPCR) are not handled: untested here
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:
        return None


def _mxcsr_flush_bits(mode=None):
    """Read, and with mode given set, the FTZ and DAZ bits of this thread's MXCSR; None where unsupported."""
    libm = _libm()
    if libm is None:
        return None
    env = ctypes.create_string_buffer(32)
    if libm.fegetenv(env) != 0:
        return None
    mxcsr = int.from_bytes(env.raw[28:32], "little")
    if mode is not None:
        mxcsr = mxcsr | _MXCSR_FLUSH_BITS if mode else mxcsr & ~_MXCSR_FLUSH_BITS
        env[28:32] = mxcsr.to_bytes(4, "little")
        if libm.fesetenv(env) != 0:
            return None
    return bool(mxcsr & _MXCSR_FLUSH_BITS)


def set_flush_denormal(mode):
    """Flush subnormal floats to zero (True) or keep gradual underflow (False), as torch.set_flush_denormal.

    Returns True where it took effect: x86-64 Linux with glibc; elsewhere it
    does nothing and returns False. lamina turns flushing on when it is
    imported, as TensorFlow does on CPU: a training run that has filled Adam's
    state with values below 1e-38 (float32's normal range) otherwise runs each
    arithmetic pass over them at a fraction of its speed. The setting is the
    CPU's, per thread: it holds for this thread, for threads started after the
    call, and for the worker threads of lamina's compiled kernels, but not for
    BLAS threads that NumPy started earlier.

    >>> flushing = lamina.set_flush_denormal(True)  # False where it cannot be set
    >>> bool(np.float32(1e-20) * np.float32(1e-20) == 0) == flushing  # 1e-40 is subnormal in float32
    True
    """
    if _mxcsr_flush_bits(bool(mode)) is None:
        return False
    for listener in _flush_listeners:
        listener(bool(mode))
    return True


def flush_denormal():
    """Whether subnormal floats are flushed to zero on this thread (False where lamina cannot set it)."""
    return bool(_mxcsr_flush_bits())


# --- threads ------------------------------------------------------------------------------------------------------
def _cores_available():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_num_threads = None  # None: the cores this process may run on
_threads_changed = []  # called with the new count: lamina.kernels passes it to its compiled kernels


def set_num_threads(n):
    """Use n threads for matrix products (BLAS) and for lamina's compiled kernels, as torch.set_num_threads.

    lamina's ops run one after another, so a kernel's threads and BLAS's
    threads never work at the same time: both get n. BLAS is limited through
    threadpoolctl when it is installed (`pip install lamina[fast]`).

    >>> before = lamina.get_num_threads()
    >>> lamina.set_num_threads(1); lamina.get_num_threads()
    1
    >>> lamina.set_num_threads(before)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    global _num_threads
    _num_threads = int(n)
    if importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=_num_threads, user_api="blas")
    for listener in _threads_changed:
        listener(_num_threads)


def get_num_threads():
    """The thread count set by set_num_threads, by default the cores this process may run on."""
    return _cores_available() if _num_threads is None else _num_threads


# --- kernels ------------------------------------------------------------------------------------------------------
KERNELS = ("numpy", "numba")
_kernels = None  # decided on first use: LAMINA_KERNELS, else numba when importable, else numpy


def set_kernels(name):
    """Run lamina's hot loops on the NumPy reference ("numpy") or on the compiled kernels ("numba").

    The environment variable LAMINA_KERNELS picks the starting path; without
    it, lamina uses numba when it is installed (`pip install lamina[fast]`).
    Both paths give the same results within float32 rounding. On a GPU the
    compiled kernels are CuPy's (lamina.kernels.gpu, no Numba needed): they
    run unless "numpy" was asked for, here or in LAMINA_KERNELS.
    """
    if name not in KERNELS:
        raise ValueError(f"set_kernels: expected one of {KERNELS}, got {name!r}")
    if name == "numba" and importlib.util.find_spec("numba") is None:
        raise ImportError("set_kernels('numba'): numba is not installed (pip install lamina[fast])")
    global _kernels, _gpu_kernels
    _kernels = name
    _gpu_kernels = name != "numpy"


_gpu_kernels = os.environ.get("LAMINA_KERNELS") != "numpy"


def gpu_kernels():
    """Whether GPU arrays take lamina's fused CuPy kernels (True unless the "numpy" path was asked for)."""
    return _gpu_kernels


def get_kernels():
    """The kernel path in use: "numpy" or "numba"."""
    global _kernels
    if _kernels is None:
        chosen = os.environ.get("LAMINA_KERNELS")
        if chosen is not None:
            set_kernels(chosen)
        else:  # numba's absence leaves the GPU kernels on: they need none
            _kernels = "numba" if importlib.util.find_spec("numba") is not None else "numpy"
    return _kernels
