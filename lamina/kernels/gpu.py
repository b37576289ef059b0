"""lamina's hot loops on a GPU: CuPy kernels, each one launch where the NumPy reference takes several.

Imported by lamina.kernels the first time a CuPy array reaches a dispatcher, never by `import lamina`; the
kernels are compiled by CuPy on their first call (and cached on disk by CuPy). Each matches its reference
twin in lamina.kernels.reference to float32 rounding (tests/test_cuda.py holds them to it on a GPU).
"""

import math

from lamina import backend

cupy = backend.cuda_module("lamina.kernels.gpu")  # CuPy, through the one module that knows it

# One Adam (AdamW when decoupled) update per element, in the order torch.optim.Adam rounds it: the eleven
# passes of the reference in one launch. The scalars come in the parameter's dtype, computed as the reference
# computes them (in Python floats, then rounded once).
_adam = cupy.ElementwiseKernel(
    "T g, T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T root_bias2, T step_size, T weight_decay, "
    "T decay_factor, bool decoupled",
    "T p, T m, T v",
    """
    T grad = g;
    if (decoupled) {
        p = p * decay_factor;
    } else if (weight_decay != (T)0) {
        grad = grad + weight_decay * p;
    }
    m = m + (grad - m) * one_minus_beta1;
    v = v * beta2 + (grad * grad) * one_minus_beta2;
    p = p - (m / (sqrt(v) / root_bias2 + eps)) * step_size;
    """,
    "lamina_adam_step",
)


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled):
    t = param.dtype.type
    _adam(grad, t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(math.sqrt(1 - beta2**step)),
          t(lr / (1 - beta1**step)), t(weight_decay), t(1 - lr * weight_decay), bool(decoupled), param, m, v)


_sgd = cupy.ElementwiseKernel(
    "T g, T lr, T weight_decay", "T p", "p = p - lr * (g + weight_decay * p)", "lamina_sgd_step")


def sgd_step(param, grad, lr, weight_decay):
    """Plain SGD (no momentum) in one launch."""
    t = param.dtype.type
    _sgd(grad, t(lr), t(weight_decay), param)


# y <- max(y + bias, 0), bias along the last axis (broadcast by CuPy); NaN stays NaN as in the reference.
_bias_relu = cupy.ElementwiseKernel(
    "T b", "T y", "T s = y + b; y = (s > (T)0 || s != s) ? s : (T)0", "lamina_bias_relu")

_relu_backward = cupy.ElementwiseKernel(
    "T g, T y", "T out", "out = y > (T)0 ? g : (T)0", "lamina_relu_backward")


def bias_relu_(y, bias):
    _bias_relu(bias, y)
    return y


def relu_backward(g, y):
    return _relu_backward(g, y)
