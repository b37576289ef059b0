"""Fused neural-network kernels: one op where a composition would cost several passes."""

import numpy as np

from lamina.autograd import Function, as_tensor
from lamina.ops.elementwise import sigmoid
from lamina.ops.shape import sum_to

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
