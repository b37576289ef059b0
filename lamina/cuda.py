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
    """Make `device` (an index, "cuda:N" or a lamina.device) the current GPU: the one lamina computes on."""
    cupy = backend.cuda_module("set_device")
    index = backend.device(device).index or 0
    if not 0 <= index < cupy.cuda.runtime.getDeviceCount():
        raise RuntimeError(f"set_device: cuda:{index} does not exist: CUDA sees "
                           f"{cupy.cuda.runtime.getDeviceCount()} GPU(s)")
    cupy.cuda.Device(index).use()


def get_device_name(device=None):
    cupy = backend.cuda_module("get_device_name")
    index = current_device() if device is None else backend.device(device).index or 0
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else name


def manual_seed(seed):
    """Seed the GPUs' generators (PyTorch's manual_seed seeds the current GPU; lamina seeds all alike)."""
    backend.cuda_manual_seed(seed)


manual_seed_all = manual_seed


def memory_allocated(device=None):
    """Bytes held by tensors on the GPU (CuPy's memory pool, used bytes); 0 without CUDA."""
    return backend.cuda_module().get_default_memory_pool().used_bytes() if is_available() else 0


__all__ = ["CUDAGraph", "current_device", "device_count", "get_device_name", "graph", "is_available",
           "manual_seed", "manual_seed_all", "memory_allocated", "set_device", "synchronize"]


# --- CUDA graphs: a step's GPU work recorded once, replayed with one launch ----------------------------------------
class CUDAGraph:
    """GPU work captured by `lamina.cuda.graph(g)`, replayed with `g.replay()` (as torch.cuda.CUDAGraph).

    A replay runs the captured kernels again on the same memory: the tensors that the captured code read are
    read again (write new inputs into them in place), the tensors it made are written again. Nothing that the
    Python code did runs again: no checks, no host-side counters, no random draws.
    """

    def __init__(self):
        self._graph = None
        self._memory = []  # every block allocated while capturing: the graph reads and writes them on each replay

    def replay(self):
        if self._graph is None:
            raise RuntimeError("CUDAGraph.replay: nothing has been captured (use `with lamina.cuda.graph(g):`)")
        cupy = backend.cuda_module("CUDAGraph.replay")
        self._graph.launch(cupy.cuda.get_current_stream())

    def reset(self):
        self._graph, self._memory = None, []


class graph:
    """Context manager: record the GPU work of the block into `cuda_graph` instead of running it.

    >>> g = lamina.cuda.CUDAGraph()                                     # doctest: +SKIP
    >>> with lamina.cuda.graph(g):                                      # doctest: +SKIP
    ...     loss = loss_fn(model(static_x), static_y); loss.backward()
    >>> static_x.copy_(next_batch); g.replay()                          # doctest: +SKIP

    Run the block once or twice outside the graph first (PyTorch asks the same), so that kernels are compiled
    and gradients exist. What the block may not do, and gets one clear error for: read a GPU value on the host
    (`.item()`, `float(t)`, `if t:`, a boolean mask's size), copy between host and GPU, draw random numbers.
    """

    def __init__(self, cuda_graph):
        self.cuda_graph = cuda_graph

    def __enter__(self):
        cupy = backend.cuda_module("lamina.cuda.graph")
        cupy.cuda.get_current_stream().synchronize()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.stream.__enter__()
        self.pool = pool = cupy.get_default_memory_pool()
        kept = self.cuda_graph._memory

        def malloc(size):
            block = pool.malloc(size)
            kept.append(block)
            return block

        self.previous_allocator = cupy.cuda.get_allocator()
        cupy.cuda.set_allocator(malloc)
        backend.capturing = True
        self.stream.begin_capture()
        return self.cuda_graph

    def __exit__(self, kind, error, traceback):
        cupy = backend.cuda_module()
        backend.capturing = False
        try:
            captured, failure = self.stream.end_capture(), None
        except Exception as e:  # the capture was invalidated by what the block did
            captured, failure = None, e
        finally:
            cupy.cuda.set_allocator(self.previous_allocator)
            self.stream.__exit__(None, None, None)
        if error is not None:
            if isinstance(error, (NotImplementedError, cupy.cuda.runtime.CUDARuntimeError)) or (
                    isinstance(error, RuntimeError) and "stream is capturing" in str(error)):  # CuPy's refusals
                raise RuntimeError(f"lamina.cuda.graph: the captured code did something a CUDA graph cannot hold "
                                   f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
                                   "a read of a GPU value on the host (.item(), float(), a bool test, a mask's "
                                   "size), a copy between host and GPU, or a product CuPy will not capture (the "
                                   "batched products of attention and the recurrent layers); run that outside "
                                   "the graph, or train without one") from error
            return False  # lamina's own errors pass as they are
        if failure is not None:
            raise RuntimeError(f"lamina.cuda.graph: the capture failed ({failure})") from failure
        self.cuda_graph._graph = captured
        return False
