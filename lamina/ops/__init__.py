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
from lamina.ops.arguments import torch_arguments

# PyTorch's conventions (see ops.arguments): keyword names, axis=/keepdims= where PyTorch takes them, out=
for _fn, _names, _spellings, _out in [
    (add, ("input", "other"), None, True), (sub, ("input", "other"), None, True),
    (mul, ("input", "other"), None, True), (div, ("input", "other"), None, True),
    (pow, ("input", "exponent"), None, True), (matmul, ("input", "other"), None, True),
    (maximum, ("input", "other"), None, True), (minimum, ("input", "other"), None, True),
    (exp, ("input",), None, True), (log, ("input",), None, True), (sqrt, ("input",), None, True),
    (abs, ("input",), None, True), (sin, ("input",), None, True), (cos, ("input",), None, True),
    (tanh, ("input",), None, True), (sigmoid, ("input",), None, True), (clamp, ("input",), None, True),
    (sum, ("input",), True, True), (mean, ("input",), True, True), (amax, ("input",), True, True),
    (amin, ("input",), True, True), (logsumexp, ("input",), True, True), (var, ("input",), True, False),
    (std, ("input",), True, False), (max, ("input",), True, False), (min, ("input",), True, False),
    (argmax, ("input",), True, False), (argmin, ("input",), True, False), (softmax, ("input",), True, False),
    (log_softmax, ("input",), True, False), (squeeze, ("input",), True, False),
    (unsqueeze, ("input",), True, False), (cat, ("tensors",), True, True), (stack, ("tensors",), True, True),
    (norm, ("input",), False, False),
]:
    globals()[_fn.__name__] = torch_arguments(_fn, _names, _spellings, _out)
del _fn, _names, _spellings, _out


def mm(input, mat2, *, out=None):
    """The product of two matrices (2-D only; matmul broadcasts)."""
    if input.ndim != 2 or getattr(mat2, "ndim", 2) != 2:
        raise ValueError(f"mm: both operands must be 2-D, got shapes {input.shape} and {mat2.shape}")
    return matmul(input, mat2) if out is None else matmul(input, mat2, out=out)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "binary_cross_entropy_with_logits", "broadcast_to", "cast",
    "cat", "chunk", "clamp", "clip", "clone", "cos", "div", "eq", "erf", "exp", "expand", "expm1", "flatten",
    "gather", "ge", "getitem", "gru_sequence", "gt", "layer_norm", "le", "linear", "log", "log10", "log1p",
    "log_softmax", "logsumexp", "lstm_sequence", "lt", "masked_fill", "matmul", "mm", "max", "maximum", "mean", "min",
    "minimum", "mul", "ne", "neg", "norm", "pad", "permute", "pow", "relu", "reshape", "rnn_sequence", "roll",
    "sigmoid", "sin", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "tanh",
    "transpose", "tril", "triu", "unsqueeze", "var", "view", "where",
]
