"""lamina's differentiable primitives, grouped by kind."""

from lamina.ops.elementwise import (  # noqa: I001
    abs, add, cast, clamp, clip, cos, div, eq, erf, exp, ge, gt, le, log, lt, maximum, minimum, mul, ne, neg,
    pow, relu, sigmoid, sin, sqrt, sub, tanh, where,
)
from lamina.ops.linalg import matmul
from lamina.ops.nn import binary_cross_entropy_with_logits, linear
from lamina.ops.reductions import (
    amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min, softmax, sum, var,
)
from lamina.ops.shape import (
    broadcast_to, cat, chunk, expand, flatten, gather, getitem, pad, permute, reshape, split, squeeze, stack,
    sum_to, transpose, unsqueeze, view,
)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "binary_cross_entropy_with_logits", "broadcast_to",
    "cast", "cat", "chunk", "clamp", "clip", "cos", "div", "eq", "erf", "exp", "expand", "flatten", "gather",
    "ge", "getitem", "gt", "le", "linear", "log", "log_softmax", "logsumexp", "lt", "matmul", "max", "maximum",
    "mean", "min", "minimum", "mul", "ne", "neg", "pad", "permute", "pow", "relu", "reshape", "sigmoid", "sin",
    "softmax", "split", "sqrt", "squeeze", "stack", "sub", "sum", "sum_to", "tanh", "transpose",
    "unsqueeze", "var", "view", "where",
]
