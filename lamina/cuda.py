"""torch.cuda's questions, answered as a CPU-only build of PyTorch answers them (see backend.device).

Programs written for PyTorch ask `torch.cuda.is_available()` and pick the CPU when it says False:

>>> device = "cuda" if lamina.cuda.is_available() else "cpu"
>>> lamina.zeros(2, device=device).device
device(type='cpu')
"""

from lamina.backend import cuda_is_available as is_available


def device_count():
    return 0


def manual_seed(seed):
    """Seeds nothing: there is no CUDA generator (PyTorch ignores it too when CUDA is unavailable)."""


manual_seed_all = manual_seed

__all__ = ["device_count", "is_available", "manual_seed", "manual_seed_all"]
