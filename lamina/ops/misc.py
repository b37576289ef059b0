"""PyTorch's top-level helpers that record no graph: questions about a tensor, the default dtype, empty_like,
and bernoulli draws."""

import numpy as np

from lamina.autograd import Tensor, wrap
from lamina.backend import array_module, default_float, device_of, get_array_module
from lamina.backend import generator as random_source


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(input):
    return input.dtype.kind == "f"


def numel(input):
    return input.array.size


def get_default_dtype():
    """The dtype that Python floats and new float tensors get: float32."""
    return default_float


def set_default_dtype(d):
    """lamina's default float is float32, fixed: setting it to float32 is accepted, anything else refused.

    Use dtype=lamina.float64 where a tensor or layer is made (or `model.double()`) for float64 work.
    """
    if np.dtype(d) != default_float:
        raise NotImplementedError(f"set_default_dtype: lamina's default float dtype is float32 and cannot be "
                                  f"changed to {np.dtype(d)}; pass dtype={np.dtype(d)} where tensors are made, "
                                  "or call .double() on a model")


def empty_like(input, *, dtype=None, requires_grad=False, device=None, layout=None, memory_format=None):
    """A new tensor of input's shape and dtype (unless given); zero-filled, where PyTorch leaves it uninitialized."""
    xp = get_array_module(input.array) if device is None else array_module(device)
    out = wrap(xp.zeros(input.shape, dtype=dtype or input.dtype))
    return out.requires_grad_() if requires_grad else out


def bernoulli(input, p=None, *, generator=None):
    """1 with probability input (or p) and 0 otherwise, elementwise, in input's dtype; from lamina's generator
    (or `generator`).

    >>> lamina.bernoulli(lamina.tensor([0.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    probability = input.array if p is None else p
    if input.dtype.kind != "f":
        raise TypeError(f"bernoulli: input must be a float tensor, not {input.dtype}")
    probability = get_array_module(input.array).asarray(probability)  # on input's device, as the draws
    if bool(((probability < 0) | (probability > 1)).any()):
        raise ValueError("bernoulli: probabilities must lie in [0, 1]")
    draws = random_source(generator, device_of(input.array)).random(input.shape) < probability
    return wrap(draws.astype(input.dtype))
