"""Matrix products."""

from lamina import kernels
from lamina.autograd import Function, as_operand
from lamina.backend import get_array_module
from lamina.ops.arrange import diag
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
        a, b = _t(a, self.ta), _t(b, self.tb)
        if a.shape[-1] == 1 and a.ndim == 2 and b.ndim == 2:
            # An outer product (the input gradient of a layer with one output): NumPy's matmul runs it
            # several times slower than dot, which hands it to BLAS whole (20 us against 4 for 1000 x 16).
            return get_array_module(a).dot(a, b)
        return kernels.matmul(a, b)

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
    (lamina.Size([2, 4]), lamina.Size([5, 2, 4]))
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
    if a.array.dtype != b.array.dtype:  # PyTorch refuses; widening one would be a silent difference
        raise RuntimeError(f"matmul: operands of dtypes {a.dtype} and {b.dtype} (shapes {a.shape} and {b.shape}) "
                           "must have one dtype, as in PyTorch: convert one with .to(dtype)")
    return MatMul()(a, b)


# --- the named products PyTorch programs call (issue 12): checks of the shapes, then matmul ----------------
def _check(op, **operands):
    """Each operand has the number of dims its name's suffix says (a1, m2, b3: 1-D, 2-D, 3-D)."""
    for name, (t, ndim) in operands.items():
        if getattr(t, "ndim", None) != ndim:
            shape = getattr(t, "shape", type(t).__name__)
            raise ValueError(f"{op}: {name} must be {ndim}-D, got {shape}")


def bmm(input, mat2):
    """Batched matrix product of (b, n, m) and (b, m, p), without broadcasting."""
    _check("bmm", input=(input, 3), mat2=(mat2, 3))
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: {input.shape} and {mat2.shape}")
    return matmul(input, mat2)


def _scaled_sum(input, product, beta, alpha):
    product = product if alpha == 1 else product * alpha
    if beta == 0:  # PyTorch ignores input then, NaNs included
        return product
    return (input if beta == 1 else input * beta) + product


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2), input broadcast to the product's shape."""
    _check("addmm", mat1=(mat1, 2), mat2=(mat2, 2))
    return _scaled_sum(input, matmul(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * bmm(batch1, batch2)."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    return _scaled_sum(input, mv(mat, vec), beta, alpha)


def dot(input, tensor):
    """The inner product of two 1-D tensors of the same length.

    >>> lamina.dot(lamina.tensor([1.0, 2.0]), lamina.tensor([3.0, 4.0])).item()
    11.0
    """
    _check("dot", input=(input, 1), tensor=(tensor, 1))
    if input.shape != tensor.shape:
        raise ValueError(f"dot: lengths differ: {input.shape} and {tensor.shape}")
    return matmul(input, tensor)


def mv(input, vec):
    """Matrix times vector: (n, m) @ (m,)."""
    _check("mv", input=(input, 2), vec=(vec, 1))
    return matmul(input, vec)


def outer(input, vec2):
    """The outer product of two 1-D tensors: out[i, j] = input[i] * vec2[j]."""
    _check("outer", input=(input, 1), vec2=(vec2, 1))
    return unsqueeze(input, 1) * unsqueeze(vec2, 0)


ger = outer


def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    _check("trace", input=(input, 2))
    return diag(input).sum()
