"""lamina's differentiable primitives, grouped by kind."""

from lamina.ops.elementwise import (  # noqa: I001
    abs, add, cast, clamp, clip, cos, eq, erf, exp, expm1, ge, gt, le, log, log1p, log10, lt, masked_fill,
    maximum, minimum, mul, ne, neg, pow, relu, sigmoid, sin, sqrt, sub, tanh, to_device,
)
from lamina.ops.pointwise import (  # div takes rounding_mode=
    acos, addcdiv, addcmul, allclose, asin, atan, atan2, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, ceil,
    clamp_max, clamp_min, cosh, div, equal, exp2, float_power, floor, floor_divide, fmod, frac, isclose, isfinite,
    isinf, isnan, lerp, log2, logical_and, logical_not, logical_or, logical_xor, nan_to_num, reciprocal, remainder,
    round, rsqrt, sgn, sign, sinh, square, subtract, tan, trunc,
)
from lamina.ops.linalg import addmm, addmv, baddbmm, bmm, dot, ger, matmul, mv, outer, trace
from lamina.ops.nn import binary_cross_entropy_with_logits, layer_norm, linear
from lamina.ops.reductions import (
    all, amax, amin, any, argmax, argmin, count_nonzero, cumprod, cumsum, log_softmax, logsumexp, max, mean, min,
    norm, prod, softmax, std, sum, var,
)
from lamina.ops.recurrent import gru_sequence, lstm_sequence, rnn_sequence
from lamina.ops.shape import (
    broadcast_to, cat, chunk, clone, expand, flatten, gather, getitem, pad, permute, reshape, roll, split, squeeze,
    stack, sum_to, transpose, tril, triu, unsqueeze, view,
)
from lamina.ops.arrange import (
    diag, diff, flip, fliplr, flipud, movedim, narrow, ravel, repeat_interleave, rot90, select, swapaxes, tile,
    unbind,
)
from lamina.ops.indexing import (  # where also takes the condition alone
    argwhere, index_add, index_select, masked_select, nonzero, scatter, scatter_add, where,
)
from lamina.ops.sorting import argsort, bincount, cummax, cummin, kthvalue, median, mode, sort, topk, unique
from lamina.ops.misc import (
    bernoulli, empty_like, get_default_dtype, is_floating_point, is_tensor, numel, set_default_dtype,
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
    # issue 12's additions
    (all, ("input",), True, True), (any, ("input",), True, True), (prod, ("input",), True, True),
    (cumsum, ("input",), True, True), (cumprod, ("input",), True, True), (count_nonzero, ("input",), True, False),
    (sort, ("input",), True, False), (argsort, ("input",), True, False), (topk, ("input",), True, False),
    (kthvalue, ("input",), True, False), (median, ("input",), True, False), (mode, ("input",), True, False),
    (cummax, ("input",), True, False), (cummin, ("input",), True, False), (flip, ("input",), None, False),
    (floor, ("input",), None, True), (ceil, ("input",), None, True), (trunc, ("input",), None, True),
    (round, ("input",), None, True), (sign, ("input",), None, True), (frac, ("input",), None, True),
    (reciprocal, ("input",), None, True), (rsqrt, ("input",), None, True), (square, ("input",), None, True),
    (sinh, ("input",), None, True), (cosh, ("input",), None, True), (tan, ("input",), None, True),
    (asin, ("input",), None, True), (acos, ("input",), None, True), (atan, ("input",), None, True),
    (log2, ("input",), None, True), (exp2, ("input",), None, True), (atan2, ("input", "other"), None, True),
    (remainder, ("input", "other"), None, True), (fmod, ("input", "other"), None, True),
    (floor_divide, ("input", "other"), None, True), (div, ("input", "other"), None, True),
    (bmm, ("input", "mat2"), None, True), (dot, ("input", "tensor"), None, True), (mv, ("input", "vec"), None, True),
    (outer, ("input", "vec2"), None, True), (addmm, ("input", "mat1", "mat2"), None, True),
    (baddbmm, ("input", "batch1", "batch2"), None, True), (index_select, ("input",), None, True),
    (masked_select, ("input", "mask"), None, True), (logical_and, ("input", "other"), None, True),
    (logical_or, ("input", "other"), None, True), (logical_xor, ("input", "other"), None, True),
    (logical_not, ("input",), None, True), (isclose, ("input", "other"), None, False),
    (lerp, ("input", "end", "weight"), None, True), (addcmul, ("input", "tensor1", "tensor2"), None, True),
    (addcdiv, ("input", "tensor1", "tensor2"), None, True), (nan_to_num, ("input",), None, True),
    (diff, ("input",), None, False), (unbind, ("input",), None, False), (tile, ("input",), None, False),
    (repeat_interleave, ("input",), None, False), (diag, ("input",), None, True),
    (float_power, ("input", "exponent"), None, True), (scatter, ("input",), None, True),
    (scatter_add, ("input",), None, True), (index_add, ("input",), None, True),
    (subtract, ("input", "other"), None, True), (bitwise_and, ("input", "other"), None, True),
    (bitwise_or, ("input", "other"), None, True), (bitwise_xor, ("input", "other"), None, True),
    (bitwise_not, ("input",), None, True),
]:
    globals()[_fn.__name__] = torch_arguments(_fn, _names, _spellings, _out)
del _fn, _names, _spellings, _out
# PyTorch's other names for the same functions
divide = true_divide = div
multiply, negative, absolute, arctan2 = mul, neg, abs, atan2
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
swapdims, moveaxis = swapaxes, movedim


def mm(input, mat2, *, out=None):
    """The product of two matrices (2-D only; matmul broadcasts)."""
    if input.ndim != 2 or getattr(mat2, "ndim", 2) != 2:
        raise ValueError(f"mm: both operands must be 2-D, got shapes {input.shape} and {mat2.shape}")
    return matmul(input, mat2) if out is None else matmul(input, mat2, out=out)

__all__ = [
    "absolute", "acos", "addcdiv", "addcmul", "addmm", "addmv", "all", "allclose", "any", "arctan2", "argsort",
    "argwhere", "asin", "atan", "atan2", "baddbmm", "bernoulli", "bincount", "bitwise_and",
    "bitwise_not", "bitwise_or", "bitwise_xor", "bmm", "ceil", "clamp_max", "clamp_min",
    "cosh", "count_nonzero", "cummax", "cummin", "cumprod", "cumsum", "diag", "diff", "divide", "dot", "empty_like",
    "equal", "exp2", "flip", "fliplr", "flipud", "float_power", "floor", "floor_divide", "fmod", "frac",
    "get_default_dtype", "ger", "greater", "greater_equal", "index_add", "index_select", "is_floating_point",
    "is_tensor", "isclose", "isfinite", "isinf", "isnan", "kthvalue", "lerp", "less", "less_equal", "log2",
    "logical_and", "logical_not", "logical_or", "logical_xor", "masked_select", "median", "mode", "moveaxis",
    "movedim", "multiply", "mv", "nan_to_num", "narrow", "negative", "nonzero", "not_equal", "numel", "outer", "prod",
    "ravel", "reciprocal", "remainder", "repeat_interleave", "rot90", "round", "rsqrt", "scatter", "scatter_add",
    "select", "set_default_dtype", "sgn", "sign", "sinh", "sort", "square", "subtract", "swapaxes", "swapdims", "tan",
    "tile", "topk", "trace", "true_divide", "trunc", "unbind", "unique",
    "abs", "add", "amax", "amin", "argmax", "argmin", "binary_cross_entropy_with_logits", "broadcast_to", "cast",
    "cat", "chunk", "clamp", "clip", "clone", "cos", "div", "eq", "erf", "exp", "expand", "expm1", "flatten",
    "gather", "ge", "getitem", "gru_sequence", "gt", "layer_norm", "le", "linear", "log", "log10", "log1p",
    "log_softmax", "logsumexp", "lstm_sequence", "lt", "masked_fill", "matmul", "mm", "max", "maximum", "mean", "min",
    "minimum", "mul", "ne", "neg", "norm", "pad", "permute", "pow", "relu", "reshape", "rnn_sequence", "roll",
    "sigmoid", "sin", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "tanh",
    "to_device", "transpose", "tril", "triu", "unsqueeze", "var", "view", "where",
]
