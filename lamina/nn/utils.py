"""Gradient clipping and flat-vector views of a model's parameters."""

import numpy as np

from lamina.autograd import Tensor, no_grad, wrap
from lamina.backend import get_array_module


def _with_grads(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in parameters if p.grad is not None]


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most max_norm; return the norm before."""
    grads = [p.grad.array for p in _with_grads(parameters)]
    if not grads:
        return wrap(np.asarray(0.0, dtype=np.float32))
    if norm_type == float("inf"):
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        total = float(sum(float((np.abs(g) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return wrap(get_array_module(grads[0]).asarray(total, dtype=grads[0].dtype))  # on the gradients' device


@no_grad()
def clip_grad_value_(parameters, clip_value):
    for p in _with_grads(parameters):
        np.clip(p.grad.array, -clip_value, clip_value, out=p.grad.array)


def parameters_to_vector(parameters):
    arrays = [p.array.reshape(-1) for p in parameters]
    return wrap(get_array_module(arrays[0]).concatenate(arrays) if arrays else np.concatenate(arrays))


@no_grad()
def vector_to_parameters(vec, parameters):
    parameters = list(parameters)
    xp = get_array_module(parameters[0].array) if parameters else np
    data = vec.array if isinstance(vec, Tensor) else xp.asarray(vec)
    total = sum(p.array.size for p in parameters)
    if data.size != total:
        raise ValueError(f"vector_to_parameters: vector has {data.size} elements, the parameters {total}")
    start = 0
    for p in parameters:
        p.array[...] = data[start:start + p.array.size].reshape(p.shape)
        start += p.array.size
