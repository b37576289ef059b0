"""torch.cuda's questions and helpers, answered through CuPy (see backend: the one module that knows it).

Programs written for PyTorch ask `torch.cuda.is_available()` and pick the device from the answer:

>>> device = "cuda" if lamina.cuda.is_available() else "cpu"
>>> lamina.zeros(2, device=device).device == lamina.device(device)
True

Without CuPy or without a GPU, `is_available()` is False, `device_count()` 0, and the seeding functions do
nothing, as in a CPU-only build of PyTorch.
"""

from lamina import backend
from lamina.backend import cuda_device_count as device_count
from lamina.backend import cuda_is_available as is_available
from lamina.backend import synchronize


def current_device():
    """The index of the GPU that new CUDA tensors go to."""
    return backend.cuda_module("current_device").cuda.runtime.getDevice()


def set_device(device):
    """Make `device` (an index, "cuda:N" or a lamina.device) the current GPU."""
    index = backend.resolve_device(device if not isinstance(device, int) else f"cuda:{device}", "set_device").index
    backend.cuda_module().cuda.Device(index).use()


def get_device_name(device=None):
    cupy = backend.cuda_module("get_device_name")
    index = current_device() if device is None else backend.resolve_device(
        device if not isinstance(device, int) else f"cuda:{device}", "get_device_name").index
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else name


def manual_seed(seed):
    """Seed the GPUs' generators (PyTorch's manual_seed seeds the current GPU; lamina seeds all alike)."""
    backend.cuda_manual_seed(seed)


manual_seed_all = manual_seed


def memory_allocated(device=None):
    """Bytes held by tensors on the GPU (CuPy's memory pool, used bytes); 0 without CUDA."""
    return backend.cuda_module().get_default_memory_pool().used_bytes() if is_available() else 0


__all__ = ["current_device", "device_count", "get_device_name", "is_available", "manual_seed", "manual_seed_all",
           "memory_allocated", "set_device", "synchronize"]
