"""Matrix products."""

from lamina.autograd import Function, as_operand
from lamina.ops.shape import squeeze, sum_to, unsqueeze


def _t(array, transposed):
    return array.swapaxes(-1, -2) if transposed else array


class MatMul(Function):
    """op(a) @ op(b), where op transposes the last two dims when its flag is set.

    The flags let backward's products (gy @ b^T, a^T @ gy) read their operands
    transposed in place, as BLAS does, instead of through separate transpose ops.
    """

    def __init__(self, transpose_a=False, transpose_b=False):
        self.ta, self.tb = transpose_a, transpose_b

    def forward(self, a, b):
        return _t(a, self.ta) @ _t(b, self.tb)

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = gb = None
        if need_a:  # d/d op(a) = gy @ op(b)^T, transposed back when op(a) = a^T
            ga = MatMul(self.tb, True)(b, gy) if self.ta else MatMul(False, not self.tb)(gy, b)
        if need_b:  # d/d op(b) = op(a)^T @ gy, transposed back when op(b) = b^T
            gb = MatMul(True, self.ta)(gy, a) if self.tb else MatMul(not self.ta, False)(a, gy)
        return (sum_to(ga, a.shape) if need_a else None,
                sum_to(gb, b.shape) if need_b else None)


def matmul(a, b):
    """Matrix product with NumPy's (and PyTorch's) rules for 1-D and batched operands.

    >>> a, b = lamina.ones(2, 3), lamina.ones(3, 4)
    >>> (a @ b).shape, lamina.matmul(lamina.ones(5, 2, 3), b).shape
    ((2, 4), (5, 2, 4))
    """
    a, b = as_operand(a), as_operand(b)
    a_data, b_data = a.array, b.array
    if a_data.ndim == 2 and b_data.ndim == 2 and a_data.shape[1] == b_data.shape[0] and a_data.dtype == b_data.dtype:
        return MatMul()(a, b)  # the common case, checked cheaply
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dim, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are incompatible: "
            f"the last dim of the first ({inner_a}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} dim of the second ({inner_b})"
        )
    if a.ndim == 1 or b.ndim == 1:  # a vector acts as a one-row (or one-column) matrix, then loses that dim
        out = matmul(unsqueeze(a, 0) if a.ndim == 1 else a, unsqueeze(b, 1) if b.ndim == 1 else b)
        return squeeze(out, (-2,) * (a.ndim == 1) + (-1,) * (b.ndim == 1))
    if a.array.dtype != b.array.dtype:
        a, b = (a.to(b.dtype), b) if a.array.dtype.itemsize < b.array.dtype.itemsize else (a, b.to(a.dtype))
    return MatMul()(a, b)
