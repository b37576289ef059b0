"""Fused neural-network kernels: one op where a composition would cost several passes."""

import math

import numpy as np

from lamina.autograd import Function, as_tensor, wrap
from lamina.backend import get_array_module
from lamina.ops.elementwise import clamp, log, sigmoid
from lamina.ops.linalg import MatMul
from lamina.ops.reductions import softmax
from lamina.ops.shape import reshape, sum_to

_REDUCTIONS = ("mean", "sum", "none")


class BCEWithLogits(Function):
    """Binary cross-entropy on logits z: max(z, 0) - z*t + log(1 + exp(-|z|)), stable for any z."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, z, t):
        loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        if self.reduction == "none":
            return loss
        return loss.sum() / loss.size if self.reduction == "mean" else loss.sum()

    def backward(self, gy):
        z, t = self.inputs
        scale = 1 / z.data.size if self.reduction == "mean" else 1
        need_z, need_t = self.needs_input_grad
        return (BCEWithLogitsGrad(scale)(z, t, gy) if need_z else None,
                -gy * z * scale if need_t else None)


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    input, target = as_tensor(input), as_tensor(target, like=input)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"binary_cross_entropy_with_logits: reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {input.shape} and target shape {target.shape} differ"
        )
    if target.dtype != input.dtype:
        target = target.to(input.dtype)
    return BCEWithLogits(reduction)(input, target)


class BCEWithLogitsGrad(Function):
    """d(loss)/dz = gy * scale * (sigmoid(z) - t), fused into one op; differentiable for second order."""

    def __init__(self, scale):
        self.scale = scale

    def forward(self, z, t, gy):
        e = np.exp(-np.abs(z))
        out = np.where(z >= 0, 1, e)
        out /= 1 + e
        out -= t
        out *= gy * self.scale
        return out

    def backward(self, g):
        z, t, gy = self.inputs
        s = sigmoid(z)
        g = g * self.scale
        need_z, need_t, need_gy = self.needs_input_grad
        return (g * gy * s * (1 - s) if need_z else None,
                sum_to(-g * gy, t.shape) if need_t else None,
                sum_to(g * (s - t), gy.shape) if need_gy else None)


class Linear(Function):
    """x @ weight.T + bias, with weight laid out (out_features, in_features) as in PyTorch.

    BLAS reads weight.T as a transposed view, and the weight gradient comes out
    directly in the (out, in) layout, with no transposes as separate ops.
    """

    def forward(self, x, weight, bias=None):
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        x, weight = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = MatMul()(gy, weight) if need[0] else None
        gw = None
        if need[1]:
            rows = math.prod(gy.shape[:-1])
            gw = MatMul(True, False)(reshape(gy, (rows, gy.shape[-1])), reshape(x, (rows, x.shape[-1])))
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, sum_to(gy, self.inputs[2].shape) if need[2] else None


def linear(input, weight, bias=None):
    if input.shape[-1:] != weight.shape[1:] or weight.ndim != 2:
        raise ValueError(
            f"linear: input of shape {input.shape} does not fit weight of shape {weight.shape} "
            f"(expected input's last dim to be {weight.shape[-1]})"
        )
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit weight of shape {weight.shape}")
    return Linear()(input, weight) if bias is None else Linear()(input, weight, bias)


class CrossEntropy(Function):
    """Softmax cross-entropy of logits (N, C) against class indices (N,), fused and stable."""

    def __init__(self, target, reduction):
        self.target, self.reduction = target, reduction

    def forward(self, z):
        xp = get_array_module(z)
        shifted = z - z.max(axis=1, keepdims=True)
        loss = xp.log(xp.exp(shifted).sum(axis=1)) - shifted[xp.arange(len(z)), self.target]
        if self.reduction == "none":
            return loss
        return loss.sum() / len(z) if self.reduction == "mean" else loss.sum()

    def backward(self, gy):
        (z,) = self.inputs
        xp = get_array_module(z.data)
        onehot = xp.zeros(z.shape, dtype=z.dtype)
        onehot[xp.arange(len(z.data)), self.target] = 1
        if self.reduction == "mean":
            gy = gy / len(z.data)
        elif self.reduction == "none":
            gy = reshape(gy, (len(z.data), 1))
        return (softmax(z, 1) - wrap(onehot)) * gy


class BinaryCrossEntropy(Function):
    """-(t log p + (1 - t) log(1 - p)) per element, logs clamped at -100 as in PyTorch."""

    def forward(self, p, t):
        xp = get_array_module(p)
        with np.errstate(divide="ignore"):
            log_p = xp.maximum(xp.log(p), -100)
            log_q = xp.maximum(xp.log1p(-p), -100)
        return -(t * log_p + (1 - t) * log_q)

    def backward(self, gy):
        p, t = self.inputs
        need_p, need_t = self.needs_input_grad
        gp = gy * (p - t) / clamp(p * (1 - p), min=1e-12) if need_p else None
        gt = gy * (clamp(log(clamp(1 - p, min=1e-44)), min=-100) - clamp(log(clamp(p, min=1e-44)), min=-100)) \
            if need_t else None
        return gp, gt
