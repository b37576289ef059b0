"""torch.accelerator's questions: the accelerator is CUDA (through CuPy) when a GPU is usable, else none."""

from lamina import backend


def is_available():
    return backend.cuda_is_available()


def current_accelerator(check_available=False):
    return backend.device("cuda") if backend.cuda_is_available() else None


def device_count():
    return backend.cuda_device_count()


__all__ = ["current_accelerator", "device_count", "is_available"]
