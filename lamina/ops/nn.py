"""Fused neural-network kernels: one op where a composition would cost several passes."""

import numpy as np

from lamina.autograd import Function, as_tensor
from lamina.ops.elementwise import sigmoid

_REDUCTIONS = ("mean", "sum", "none")


class BCEWithLogits(Function):
    """Binary cross-entropy on logits z: max(z, 0) - z*t + log(1 + exp(-|z|)), stable for any z."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, z, t):
        loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        if self.reduction == "none":
            return loss
        return loss.mean() if self.reduction == "mean" else loss.sum()

    def backward(self, gy):
        z, t = self.inputs
        if self.reduction == "mean":
            gy = gy / z.data.size
        need_z, need_t = self.needs_input_grad
        return (gy * (sigmoid(z) - t) if need_z else None,
                -gy * z if need_t else None)


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
