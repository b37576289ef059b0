"""Matrix products."""

from lamina.autograd import Function, as_tensor
from lamina.ops.shape import squeeze, sum_to, transpose, unsqueeze


class MatMul(Function):
    """a @ b for operands with at least two dims; leading dims broadcast."""

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy @ transpose(b, -1, -2), a.shape) if need_a else None,
                sum_to(transpose(a, -1, -2) @ gy, b.shape) if need_b else None)


def matmul(a, b):
    """Matrix product with NumPy's (and PyTorch's) rules for 1-D and batched operands."""
    a, b = as_tensor(a), as_tensor(b)
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
    if a.data.dtype != b.data.dtype:
        a, b = (a.to(b.dtype), b) if a.data.dtype.itemsize < b.data.dtype.itemsize else (a, b.to(a.dtype))
    return MatMul()(a, b)
