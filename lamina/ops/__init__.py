"""lamina's differentiable primitives, grouped by kind."""

from lamina.ops.elementwise import (  # noqa: I001
    abs, add, cast, clamp, clip, cos, div, eq, erf, exp, expm1, ge, gt, le, log, log1p, log10, lt, masked_fill,
    maximum, minimum, mul, ne, neg, pow, relu, sigmoid, sin, sqrt, sub, tanh, where,
)
from lamina.ops.linalg import matmul
from lamina.ops.nn import binary_cross_entropy_with_logits, layer_norm, linear
from lamina.ops.reductions import (
    amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min, norm, softmax, std, sum, var,
)
from lamina.ops.recurrent import gru_sequence, lstm_sequence, rnn_sequence
from lamina.ops.shape import (
    broadcast_to, cat, chunk, clone, expand, flatten, gather, getitem, pad, permute, reshape, roll, split, squeeze,
    stack, sum_to, transpose, tril, triu, unsqueeze, view,
)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "binary_cross_entropy_with_logits", "broadcast_to", "cast",
    "cat", "chunk", "clamp", "clip", "clone", "cos", "div", "eq", "erf", "exp", "expand", "expm1", "flatten",
    "gather", "ge", "getitem", "gru_sequence", "gt", "layer_norm", "le", "linear", "log", "log10", "log1p",
    "log_softmax", "logsumexp", "lstm_sequence", "lt", "masked_fill", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mul", "ne", "neg", "norm", "pad", "permute", "pow", "relu", "reshape", "rnn_sequence", "roll",
    "sigmoid", "sin", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "tanh",
    "transpose", "tril", "triu", "unsqueeze", "var", "view", "where",
]
