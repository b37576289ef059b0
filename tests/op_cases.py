"""The table of ops that the op tests run through.

Each case's `fn(L, *xs)` is written against a module `L` that is either lamina
or torch, so one line drives the NumPy check, the gradient checks and the
comparison with PyTorch. `ref(*arrays)` is the NumPy reference. Shapes are
chosen so that broadcasting happens wherever the op allows it.
"""

from dataclasses import dataclass, field

import numpy as np

MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
GATHER_INDEX = np.array([[0, 2, 2], [1, 0, 3], [3, 3, 1]])
WHERE = np.array([True, False, False, True])
ZEROS = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]])  # zeros in the product paths
SCATTER_INDEX = np.array([[3, 0], [1, 2], [0, 3]])  # distinct in each row: scatter's gradient is then defined
ADD_INDEX = np.array([[3, 3], [1, 2], [0, 0]])  # repeats: scatter_add adds them up
EMBEDDING_INDEX = np.array([[0, 2, 2], [5, 0, 2]])  # repeats add up in the gradient


def _scatter(a, b, index=SCATTER_INDEX):
    out = a.copy()
    np.put_along_axis(out, index, b, axis=1)
    return out


def _scatter_add(a, b):
    out = a.copy()
    np.add.at(out, (np.arange(3)[:, None], ADD_INDEX), b)
    return out


def _index_add(a, b):
    out = a.copy()
    np.add.at(out, [0, 2, 0], b)
    return out


@dataclass
class Case:
    name: str
    fn: object  # fn(L, *tensors)
    ref: object  # ref(*arrays)
    shapes: list
    domain: str = "real"  # "real": N(0, 1); "positive": in [0.5, 2]
    second_order: bool = True
    torch_fn: object = None  # when the PyTorch spelling differs from lamina's
    tags: set = field(default_factory=set)

    def __repr__(self):
        return self.name


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m).squeeze(axis)


def _bce(z, t):
    return np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))


def _conv2d(x, w, stride=1, padding=0):
    """Direct-loop reference convolution (cross-correlation), NCHW."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def _pool2d(x, k, reduce):
    n, c, h, w = x.shape
    return reduce(x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k), axis=(3, 5))


def _torch_pad(L, x):
    return L.nn.functional.pad(x, (1, 2, 0, 1), value=0.5)


CASES = [
    # elementwise, tensor and tensor with broadcasting
    Case("add", lambda L, a, b: a + b, np.add, [(3, 4), (4,)]),
    Case("add_both_broadcast", lambda L, a, b: a + b, np.add, [(2, 1, 3), (4, 1)]),
    Case("sub", lambda L, a, b: a - b, np.subtract, [(3, 1), (1, 4)]),
    Case("mul", lambda L, a, b: a * b, np.multiply, [(2, 3, 4), (3, 1)]),
    Case("div", lambda L, a, b: a / b, np.divide, [(3, 4), (4,)], domain="positive"),
    Case("neg", lambda L, a: -a, np.negative, [(3, 4)]),
    Case("pow_tensor", lambda L, a, b: a**b, np.power, [(3, 4), (4,)], domain="positive"),
    Case("pow_square", lambda L, a: a**2, lambda a: a**2, [(3, 4)]),
    Case("pow_cube", lambda L, a: a**3, lambda a: a**3, [(3, 4)]),
    Case("pow_half", lambda L, a: a**0.5, np.sqrt, [(3, 4)], domain="positive"),
    Case("rpow", lambda L, a: 2**a, lambda a: 2.0**a, [(3, 4)]),
    # elementwise with Python scalars on either side
    Case("scalar_add", lambda L, a: a + 2 + (3 + a), lambda a: 2 * a + 5, [(3, 4)]),
    Case("scalar_sub", lambda L, a: (a - 2) * (2 - a), lambda a: (a - 2) * (2 - a), [(3, 4)]),
    Case("scalar_mul", lambda L, a: 3 * a * 0.5, lambda a: 1.5 * a, [(3, 4)]),
    Case("scalar_div", lambda L, a: a / 2 + 2 / a, lambda a: a / 2 + 2 / a, [(3, 4)], domain="positive"),
    # unary
    Case("exp", lambda L, a: L.exp(a), np.exp, [(3, 4)]),
    Case("log", lambda L, a: L.log(a), np.log, [(3, 4)], domain="positive"),
    Case("sqrt", lambda L, a: L.sqrt(a), np.sqrt, [(3, 4)], domain="positive"),
    Case("abs", lambda L, a: L.abs(a), np.abs, [(3, 4)]),
    Case("sin", lambda L, a: L.sin(a), np.sin, [(3, 4)]),
    Case("cos", lambda L, a: L.cos(a), np.cos, [(3, 4)]),
    Case("tanh", lambda L, a: L.tanh(a), np.tanh, [(3, 4)]),
    Case("sigmoid", lambda L, a: L.sigmoid(a), lambda a: 1 / (1 + np.exp(-a)), [(3, 4)]),
    Case("relu", lambda L, a: L.relu(a), lambda a: np.maximum(a, 0), [(3, 4)]),
    Case("log1p", lambda L, a: L.log1p(a), np.log1p, [(3, 4)], domain="positive"),
    Case("expm1", lambda L, a: a.expm1(), np.expm1, [(3, 4)]),
    Case("log10", lambda L, a: L.log10(a), np.log10, [(3, 4)], domain="positive"),
    Case("masked_fill", lambda L, a: a.masked_fill(L.tensor(MASK), 0.5), lambda a: np.where(MASK, 0.5, a), [(3, 4)]),
    Case("clamp", lambda L, a: L.clamp(a, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), [(3, 4)]),
    Case("clamp_min", lambda L, a: a.clamp(min=0.1), lambda a: np.maximum(a, 0.1), [(3, 4)]),
    Case("maximum", lambda L, a, b: L.maximum(a, b), np.maximum, [(3, 4), (4,)]),
    Case("minimum", lambda L, a, b: L.minimum(a, b), np.minimum, [(3, 4), (4,)]),
    Case("where", lambda L, a, b: L.where(L.tensor(WHERE), a, b), lambda a, b: np.where(WHERE, a, b), [(3, 4), (3, 1)]),
    # reductions
    Case("sum_all", lambda L, a: a.sum(), np.sum, [(3, 4)]),
    Case("sum_dim", lambda L, a: a.sum(dim=1), lambda a: a.sum(axis=1), [(2, 3, 4)]),
    Case("sum_dims_keepdim", lambda L, a: a.sum(dim=(0, 2), keepdim=True),
         lambda a: a.sum(axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    Case("mean_all", lambda L, a: a.mean(), np.mean, [(3, 4)]),
    Case("mean_dim", lambda L, a: a.mean(dim=-1, keepdim=True), lambda a: a.mean(axis=-1, keepdims=True), [(2, 3, 4)]),
    Case("var_all", lambda L, a: a.var(), lambda a: a.var(ddof=1), [(3, 4)]),
    Case("var_dim", lambda L, a: a.var(dim=1), lambda a: a.var(axis=1, ddof=1), [(2, 3, 4)]),
    Case("var_biased", lambda L, a: a.var(dim=0, correction=0, keepdim=True),
         lambda a: a.var(axis=0, keepdims=True), [(5, 3)]),
    Case("std_dim", lambda L, a: a.std(dim=1), lambda a: a.std(axis=1, ddof=1), [(2, 3, 4)]),
    Case("norm_all", lambda L, a: a.norm(), np.linalg.norm, [(3, 4)]),
    Case("norm_dim", lambda L, a: L.norm(a, dim=1, keepdim=True), lambda a: np.linalg.norm(a, axis=1, keepdims=True),
         [(3, 4)]),
    Case("max_all", lambda L, a: a.max(), np.max, [(3, 4)]),
    Case("max_dim", lambda L, a: a.max(dim=1).values, lambda a: a.max(axis=1), [(3, 4)]),
    Case("max_dim_keepdim", lambda L, a: a.max(dim=0, keepdim=True)[0], lambda a: a.max(axis=0, keepdims=True), [(3, 4)]),
    Case("min_dim", lambda L, a: a.min(dim=-1).values, lambda a: a.min(axis=-1), [(2, 3, 4)]),
    Case("amax", lambda L, a: L.amax(a, dim=(0, 2)), lambda a: a.max(axis=(0, 2)), [(2, 3, 4)]),
    Case("amin", lambda L, a: L.amin(a, dim=1, keepdim=True), lambda a: a.min(axis=1, keepdims=True), [(3, 4)]),
    Case("logsumexp", lambda L, a: L.logsumexp(a, dim=1), lambda a: _logsumexp(a, 1), [(3, 4)]),
    Case("softmax", lambda L, a: L.softmax(a, dim=1), lambda a: _softmax(a, 1), [(3, 4)]),
    Case("softmax_dim0", lambda L, a: a.softmax(0), lambda a: _softmax(a, 0), [(2, 3, 4)]),
    Case("log_softmax", lambda L, a: L.log_softmax(a, dim=-1),
         lambda a: a - _logsumexp(a, -1)[..., None], [(3, 4)]),
    # shape
    Case("reshape", lambda L, a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [(2, 3, 4)]),
    Case("view", lambda L, a: a.view(6, 4), lambda a: a.reshape(6, 4), [(2, 3, 4)]),
    Case("flatten", lambda L, a: a.flatten(1), lambda a: a.reshape(2, -1), [(2, 3, 4)]),
    Case("transpose", lambda L, a: a.transpose(0, 2), lambda a: a.swapaxes(0, 2), [(2, 3, 4)]),
    Case("permute", lambda L, a: a.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0), [(2, 3, 4)]),
    Case("T", lambda L, a: a.T, lambda a: a.T, [(3, 4)]),
    Case("squeeze", lambda L, a: a.squeeze(1), lambda a: a.squeeze(1), [(3, 1, 4)]),
    Case("squeeze_all", lambda L, a: a.squeeze(), lambda a: a.squeeze(), [(3, 1, 4, 1)]),
    Case("unsqueeze", lambda L, a: a.unsqueeze(-1), lambda a: a[..., None], [(3, 4)]),
    Case("expand", lambda L, a: a.expand(2, 3, -1), lambda a: np.broadcast_to(a, (2, 3, 4)), [(3, 4)]),
    Case("broadcast_to", lambda L, a: L.broadcast_to(a, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4)), [(3, 1)]),
    Case("cat", lambda L, a, b: L.cat([a, b, a], dim=1), lambda a, b: np.concatenate([a, b, a], axis=1), [(3, 2), (3, 4)]),
    Case("stack", lambda L, a, b: L.stack([a, b], dim=1), lambda a, b: np.stack([a, b], axis=1), [(3, 4), (3, 4)]),
    Case("split", lambda L, a: L.split(a, 2, dim=1), lambda a: tuple(np.split(a, [2, 4], axis=1)), [(3, 5)]),
    Case("split_sections", lambda L, a: a.split([1, 3], dim=0), lambda a: (a[:1], a[1:]), [(4, 3)]),
    Case("chunk", lambda L, a: a.chunk(3, dim=1), lambda a: tuple(np.array_split(a, 3, axis=1)), [(2, 6)]),
    Case("pad", lambda L, a: L.pad(a, (1, 2, 0, 1), value=0.5),
         lambda a: np.pad(a, [(0, 0), (0, 1), (1, 2)], constant_values=0.5), [(2, 3, 4)], torch_fn=_torch_pad),
    Case("roll", lambda L, a: a.roll(1, 1), lambda a: np.roll(a, 1, 1), [(3, 4)]),
    Case("roll_flat", lambda L, a: L.roll(a, -2), lambda a: np.roll(a, -2), [(3, 4)]),
    Case("tril", lambda L, a: L.tril(a), np.tril, [(3, 4)]),
    Case("triu", lambda L, a: a.triu(1), lambda a: np.triu(a, 1), [(2, 3, 4)]),
    # indexing
    Case("getitem_slice", lambda L, a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)]),
    Case("getitem_int", lambda L, a: a[1, :, 2], lambda a: a[1, :, 2], [(2, 3, 4)]),
    Case("getitem_repeated", lambda L, a: a[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]], [(3, 4)]),
    Case("getitem_mask", lambda L, a: a[L.tensor(MASK)], lambda a: a[MASK], [(3, 4)]),
    Case("gather", lambda L, a: L.gather(a, 1, L.tensor(GATHER_INDEX)),
         lambda a: np.take_along_axis(a, GATHER_INDEX, axis=1), [(3, 4)]),
    # matrix products
    Case("matmul", lambda L, a, b: a @ b, np.matmul, [(3, 4), (4, 5)]),
    Case("mm_t", lambda L, a, b: a.mm(b.t()), lambda a, b: a @ b.T, [(3, 4), (5, 4)]),
    Case("matmul_vec_mat", lambda L, a, b: L.matmul(a, b), np.matmul, [(4,), (4, 5)]),
    Case("matmul_mat_vec", lambda L, a, b: a @ b, np.matmul, [(3, 4), (4,)]),
    Case("matmul_dot", lambda L, a, b: a @ b, np.matmul, [(4,), (4,)]),
    Case("matmul_outer", lambda L, a, b: a @ b, np.matmul, [(5, 1), (1, 3)]),  # inner dim 1: run by dot
    Case("matmul_batched", lambda L, a, b: a @ b, np.matmul, [(2, 3, 4), (4, 5)]),
    Case("matmul_broadcast", lambda L, a, b: a @ b, np.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    # convolution and pooling
    Case("conv2d", lambda L, x, w: L.nn.functional.conv2d(x, w, stride=2, padding=1),
         lambda x, w: _conv2d(x, w, 2, 1), [(2, 3, 6, 5), (4, 3, 3, 3)]),
    Case("max_pool2d", lambda L, x: L.nn.functional.max_pool2d(x, 2), lambda x: _pool2d(x, 2, np.max), [(2, 3, 5, 4)]),
    Case("avg_pool2d", lambda L, x: L.nn.functional.avg_pool2d(x, 2), lambda x: _pool2d(x, 2, np.mean), [(2, 3, 4, 6)]),
    # issue 12: sorting and ranking (the values; the indices are checked in test_ops_surface.py)
    Case("sort_descending", lambda L, a: L.sort(a, dim=1, descending=True).values, lambda a: -np.sort(-a, axis=1), [(3, 4)]),
    Case("sort_dim0", lambda L, a: a.sort(0)[0], lambda a: np.sort(a, axis=0), [(3, 4)]),
    Case("topk", lambda L, a: a.topk(2, dim=1).values, lambda a: -np.sort(-a, axis=1)[:, :2], [(3, 4)]),
    Case("topk_smallest", lambda L, a: L.topk(a, 2, dim=0, largest=False)[0], lambda a: np.sort(a, axis=0)[:2], [(3, 4)]),
    Case("kthvalue", lambda L, a: a.kthvalue(2, 1).values, lambda a: np.sort(a, axis=1)[:, 1], [(3, 4)]),
    Case("median_dim", lambda L, a: a.median(dim=1).values, lambda a: np.sort(a, axis=1)[:, 1], [(3, 4)]),
    Case("median_all", lambda L, a: L.median(a), lambda a: np.sort(a, axis=None)[5], [(3, 4)]),
    Case("cummax", lambda L, a: L.cummax(a, 1).values, lambda a: np.maximum.accumulate(a, axis=1), [(3, 4)]),
    Case("cummin", lambda L, a: a.cummin(0).values, lambda a: np.minimum.accumulate(a, axis=0), [(3, 4)]),
    # products and running sums
    Case("cumsum", lambda L, a: a.cumsum(1), lambda a: np.cumsum(a, axis=1), [(3, 4)]),
    Case("cumprod", lambda L, a: L.cumprod(a, 1), lambda a: np.cumprod(a, axis=1), [(3, 4)]),
    Case("cumprod_zeros", lambda L, a: L.cumprod(a * L.tensor(ZEROS, dtype=a.dtype), 1), lambda a: np.cumprod(a * ZEROS, axis=1), [(3, 4)]),
    Case("prod_dim", lambda L, a: a.prod(1), lambda a: np.prod(a, axis=1), [(3, 4)]),
    Case("prod_all", lambda L, a: L.prod(a), np.prod, [(3, 4)]),
    Case("prod_zeros", lambda L, a: (a * L.tensor(ZEROS, dtype=a.dtype)).prod(0, keepdim=True), lambda a: np.prod(a * ZEROS, axis=0, keepdims=True), [(3, 4)]),
    Case("diff", lambda L, a: L.diff(a, n=2, dim=1), lambda a: np.diff(a, 2, axis=1), [(3, 4)]),
    Case("diff_prepend", lambda L, a, b: L.diff(a, dim=0, prepend=b), lambda a, b: np.diff(a, axis=0, prepend=b), [(3, 4), (1, 4)]),
    # rearranging
    Case("flip", lambda L, a: a.flip(0, 2), lambda a: np.flip(a, (0, 2)), [(2, 3, 4)]),
    Case("fliplr", lambda L, a: L.fliplr(a), np.fliplr, [(3, 4)]),
    Case("rot90", lambda L, a: L.rot90(a, 1, (0, 1)), np.rot90, [(3, 4)]),
    Case("rot90_k3", lambda L, a: a.rot90(3, [1, 2]), lambda a: np.rot90(a, 3, (1, 2)), [(2, 3, 4)]),
    Case("movedim", lambda L, a: L.movedim(a, 0, 2), lambda a: np.moveaxis(a, 0, 2), [(2, 3, 4)]),
    Case("swapaxes", lambda L, a: a.swapaxes(0, 1), lambda a: a.swapaxes(0, 1), [(2, 3, 4)]),
    Case("tile", lambda L, a: a.tile((2, 1, 2)), lambda a: np.tile(a, (2, 1, 2)), [(3, 4)]),
    Case("repeat", lambda L, a: a.repeat(2, 1, 3), lambda a: np.tile(a, (2, 1, 3)), [(3, 4)]),
    Case("repeat_interleave", lambda L, a: a.repeat_interleave(2, dim=1), lambda a: np.repeat(a, 2, axis=1), [(3, 4)]),
    Case("repeat_interleave_counts", lambda L, a: L.repeat_interleave(a, L.tensor([1, 0, 2]), dim=0), lambda a: np.repeat(a, [1, 0, 2], axis=0), [(3, 4)]),
    Case("unbind", lambda L, a: a.unbind(1), lambda a: tuple(np.moveaxis(a, 1, 0)), [(3, 4)]),
    Case("select", lambda L, a: a.select(1, -1), lambda a: a[:, -1], [(3, 4)]),
    Case("narrow", lambda L, a: L.narrow(a, 1, 1, 2), lambda a: a[:, 1:3], [(3, 4)]),
    Case("ravel", lambda L, a: a.ravel(), np.ravel, [(3, 4)]),
    Case("diag_embed", lambda L, a: L.diag(a, 1), lambda a: np.diag(a, 1), [(3,)]),
    Case("diag_take", lambda L, a: a.diag(-1), lambda a: np.diag(a, -1), [(3, 4)]),
    Case("expand_as", lambda L, a, b: a.expand_as(b) * b, lambda a, b: a * b, [(3, 1), (3, 4)]),
    Case("reshape_as", lambda L, a, b: a.reshape_as(b) * b, lambda a, b: a.reshape(b.shape) * b, [(3, 4), (2, 6)]),
    # indexing by tensors
    Case("index_select", lambda L, a: L.index_select(a, 1, L.tensor([3, 0, 3])), lambda a: a[:, [3, 0, 3]], [(3, 4)]),
    Case("masked_select", lambda L, a: L.masked_select(a, L.tensor(MASK)), lambda a: a[MASK], [(3, 4)]),
    Case("where_method", lambda L, a, b: a.where(L.tensor(WHERE), b), lambda a, b: np.where(WHERE, a, b), [(3, 4), (4,)]),
    Case("scatter", lambda L, a, b: L.scatter(a, 1, L.tensor(SCATTER_INDEX), b), _scatter, [(3, 4), (3, 2)]),
    Case("scatter_value", lambda L, a: a.scatter(1, L.tensor(SCATTER_INDEX), 0.5), lambda a: _scatter(a, 0.5), [(3, 4)]),
    Case("scatter_add", lambda L, a, b: L.scatter_add(a, 1, L.tensor(ADD_INDEX), b), _scatter_add, [(3, 4), (3, 2)]),
    Case("index_add", lambda L, a, b: a.index_add(0, L.tensor([0, 2, 0]), b), _index_add, [(3, 4), (3, 4)]),
    # named matrix products
    Case("bmm", lambda L, a, b: L.bmm(a, b), np.matmul, [(2, 3, 4), (2, 4, 2)]),
    Case("baddbmm", lambda L, c, a, b: L.baddbmm(c, a, b, beta=0.5, alpha=2), lambda c, a, b: 0.5 * c + 2 * a @ b, [(3, 1), (2, 3, 4), (2, 4, 2)]),
    Case("addmm", lambda L, c, a, b: c.addmm(a, b, alpha=0.5), lambda c, a, b: c + 0.5 * a @ b, [(2,), (3, 4), (4, 2)]),
    Case("dot", lambda L, a, b: L.dot(a, b), np.dot, [(4,), (4,)]),
    Case("outer", lambda L, a, b: a.outer(b), np.outer, [(3,), (4,)]),
    Case("mv", lambda L, a, b: L.mv(a, b), np.matmul, [(3, 4), (4,)]),
    Case("trace", lambda L, a: L.trace(a), np.trace, [(3, 4)]),
    # more elementwise: piecewise constant ones have zero gradient, as in PyTorch
    Case("floor", lambda L, a: L.floor(a * 3), lambda a: np.floor(a * 3), [(3, 4)]),
    Case("ceil", lambda L, a: a.mul(3).ceil(), lambda a: np.ceil(a * 3), [(3, 4)]),
    Case("round", lambda L, a: L.round(a * 3), lambda a: np.round(a * 3), [(3, 4)]),
    Case("round_decimals", lambda L, a: L.round(a, decimals=1), lambda a: np.round(a, 1), [(3, 4)]),
    Case("trunc", lambda L, a: L.trunc(a * 3), lambda a: np.trunc(a * 3), [(3, 4)]),
    Case("sign", lambda L, a: a.sign() * a, lambda a: np.abs(a), [(3, 4)]),
    Case("frac", lambda L, a: L.frac(a * 3), lambda a: a * 3 - np.trunc(a * 3), [(3, 4)]),
    Case("reciprocal", lambda L, a: a.reciprocal(), np.reciprocal, [(3, 4)], domain="positive"),
    Case("rsqrt", lambda L, a: L.rsqrt(a), lambda a: a**-0.5, [(3, 4)], domain="positive"),
    Case("square", lambda L, a: L.square(a), np.square, [(3, 4)]),
    Case("sinh", lambda L, a: L.sinh(a), np.sinh, [(3, 4)]),
    Case("cosh", lambda L, a: a.cosh(), np.cosh, [(3, 4)]),
    Case("tan", lambda L, a: L.tan(a * 0.5), lambda a: np.tan(a * 0.5), [(3, 4)]),
    Case("asin", lambda L, a: L.asin(a * 0.4), lambda a: np.arcsin(a * 0.4), [(3, 4)], domain="positive"),
    Case("acos", lambda L, a: L.acos(a * -0.4), lambda a: np.arccos(a * -0.4), [(3, 4)], domain="positive"),
    Case("atan", lambda L, a: a.atan(), np.arctan, [(3, 4)]),
    Case("atan2", lambda L, a, b: L.atan2(a, b), np.arctan2, [(3, 4), (4,)]),
    Case("log2", lambda L, a: L.log2(a), np.log2, [(3, 4)], domain="positive"),
    Case("exp2", lambda L, a: L.exp2(a), np.exp2, [(3, 4)]),
    Case("lerp", lambda L, a, b: L.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a), [(3, 4), (4,)]),
    Case("lerp_tensor_weight", lambda L, a, b, w: a.lerp(b, w), lambda a, b, w: a + w * (b - a), [(3, 4), (3, 4), (4,)]),
    Case("addcmul", lambda L, a, b, c: L.addcmul(a, b, c, value=0.5), lambda a, b, c: a + 0.5 * b * c, [(3, 4), (3, 1), (4,)]),
    Case("addcdiv", lambda L, a, b, c: a.addcdiv(b, c, value=2), lambda a, b, c: a + 2 * b / c, [(3, 4), (3, 4), (4,)], domain="positive"),
    Case("remainder", lambda L, a, b: L.remainder(a * 3, b), lambda a, b: np.remainder(a * 3, b), [(3, 4), (4,)], domain="positive"),
    Case("mod_operator", lambda L, a: (a * 5) % 1.5, lambda a: np.remainder(a * 5, 1.5), [(3, 4)]),
    Case("fmod", lambda L, a, b: L.fmod(a * 3, b), lambda a, b: np.fmod(a * 3, b), [(3, 4), (4,)], domain="positive"),
    Case("clamp_min_max", lambda L, a: L.clamp_max(a.clamp_min(-0.5), 0.5), lambda a: np.clip(a, -0.5, 0.5), [(3, 4)]),
    Case("nan_to_num", lambda L, a: L.nan_to_num(a), lambda a: a, [(3, 4)]),
    Case("subtract_alpha", lambda L, a, b: L.subtract(a, b, alpha=2), lambda a, b: a - 2 * b, [(3, 4), (4,)]),
    Case("neg_method", lambda L, a: a.neg() + a.negative(), lambda a: -2 * a, [(3, 4)]),
    # issue 12: nn.functional's activations, distances and rearrangements
    Case("hardtanh", lambda L, a: L.nn.functional.hardtanh(a * 2, -1.5, 0.5), lambda a: np.clip(a * 2, -1.5, 0.5), [(3, 4)]),
    Case("relu6", lambda L, a: L.nn.functional.relu6(a * 5), lambda a: np.clip(a * 5, 0, 6), [(3, 4)]),
    Case("softplus", lambda L, a: L.nn.functional.softplus(a * 8, beta=2, threshold=10), lambda a: np.where(a * 16 > 10, a * 8, np.log1p(np.exp(a * 16)) / 2), [(3, 4)]),
    Case("selu", lambda L, a: L.nn.functional.selu(a), lambda a: 1.0507009873554804934193349852946 * np.where(a > 0, a, 1.6732632423543772848170429916717 * np.expm1(a)), [(3, 4)]),
    Case("celu", lambda L, a: L.nn.functional.celu(a, 0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a / 0.5)), [(3, 4)]),
    Case("mish", lambda L, a: L.nn.functional.mish(a), lambda a: a * np.tanh(np.log1p(np.exp(a))), [(3, 4)]),
    Case("hardswish", lambda L, a: L.nn.functional.hardswish(a * 3), lambda a: a * 3 * np.clip(a * 3 + 3, 0, 6) / 6, [(3, 4)]),
    # PyTorch's hardsigmoid kernel multiplies by 1/6 rounded to float32 even in float64 (3e-8 off): compared through relu6
    Case("hardsigmoid", lambda L, a: L.nn.functional.hardsigmoid(a * 3), lambda a: np.clip(a * 3 + 3, 0, 6) / 6, [(3, 4)],
         torch_fn=lambda L, a: L.nn.functional.relu6(a * 3 + 3) / 6),
    Case("logsigmoid", lambda L, a: L.nn.functional.logsigmoid(a * 4), lambda a: -np.log1p(np.exp(-a * 4)), [(3, 4)]),
    Case("softmin", lambda L, a: L.nn.functional.softmin(a, dim=1), lambda a: _softmax(-a, 1), [(3, 4)]),
    Case("softsign", lambda L, a: L.nn.functional.softsign(a), lambda a: a / (1 + np.abs(a)), [(3, 4)]),
    Case("tanhshrink", lambda L, a: L.nn.functional.tanhshrink(a), lambda a: a - np.tanh(a), [(3, 4)]),
    Case("threshold", lambda L, a: L.nn.functional.threshold(a, 0.1, -2.0), lambda a: np.where(a > 0.1, a, -2.0), [(3, 4)]),
    Case("glu", lambda L, a: L.nn.functional.glu(a, dim=1), lambda a: a[:, :2] / (1 + np.exp(-a[:, 2:])), [(3, 4)]),
    Case("prelu", lambda L, a, w: L.nn.functional.prelu(a, w), lambda a, w: np.where(a > 0, a, w[None, :, None] * a), [(2, 3, 4), (3,)]),
    Case("normalize", lambda L, a: L.nn.functional.normalize(a, dim=1), lambda a: a / np.linalg.norm(a, axis=1, keepdims=True), [(3, 4)]),
    Case("normalize_p3", lambda L, a: L.nn.functional.normalize(a, p=3, dim=0), lambda a: a / (np.abs(a) ** 3).sum(0) ** (1 / 3), [(3, 4)]),
    Case("cosine_similarity", lambda L, a, b: L.nn.functional.cosine_similarity(a, b, dim=-1), lambda a, b: (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(np.broadcast_to(b, a.shape), axis=-1), [(3, 4), (4,)]),
    Case("pairwise_distance", lambda L, a, b: L.nn.functional.pairwise_distance(a, b), lambda a, b: np.linalg.norm(a - b + 1e-6, axis=-1), [(3, 4), (3, 4)]),
    Case("kl_div", lambda L, a, t: L.nn.functional.kl_div(a, t, reduction="batchmean"), lambda a, t: (t * (np.log(t) - a)).sum() / 3, [(3, 4), (3, 4)], domain="positive"),
    Case("kl_div_log_target", lambda L, a, t: L.nn.functional.kl_div(a, t, reduction="sum", log_target=True), lambda a, t: (np.exp(t) * (t - a)).sum(), [(3, 4), (3, 4)]),
    Case("pixel_shuffle", lambda L, a: L.nn.functional.pixel_shuffle(a, 2), lambda a: a.reshape(2, 2, 2, 2, 3, 3).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 6, 6), [(2, 8, 3, 3)]),
    Case("pixel_unshuffle", lambda L, a: L.nn.functional.pixel_unshuffle(a, 2), lambda a: a.reshape(2, 1, 2, 2, 3, 2).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 2, 3), [(2, 1, 4, 6)]),
    Case("pad_reflect", lambda L, a: L.nn.functional.pad(a, (2, 1, 1, 2), mode="reflect"), lambda a: np.pad(a, [(0, 0), (1, 2), (2, 1)], mode="reflect"), [(2, 3, 4)]),
    Case("pad_replicate", lambda L, a: L.nn.functional.pad(a, (2, 1), mode="replicate"), lambda a: np.pad(a, [(0, 0), (0, 0), (2, 1)], mode="edge"), [(2, 3, 4)]),
    Case("pad_circular", lambda L, a: L.nn.functional.pad(a, (1, 2), mode="circular"), lambda a: np.pad(a, [(0, 0), (0, 0), (1, 2)], mode="wrap"), [(2, 3, 4)]),
    Case("adaptive_max_pool2d", lambda L, x: L.nn.functional.adaptive_max_pool2d(x, (2, 3)), lambda x: np.stack([np.stack([x[:, :, [0, 2][i]:[3, 5][i], [0, 1, 3][j]:[2, 4, 5][j]].max((2, 3)) for j in range(3)], -1) for i in range(2)], -2), [(2, 3, 5, 5)]),
    Case("adaptive_avg_pool1d", lambda L, x: L.nn.functional.adaptive_avg_pool1d(x, 2), lambda x: x.reshape(2, 3, 2, 3).mean(-1), [(2, 3, 6)]),
    Case("instance_norm", lambda L, x: L.nn.functional.instance_norm(x), lambda x: (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-5), [(2, 3, 4, 5)]),
    # fused kernels
    Case("bce_with_logits", lambda L, z, t: L.binary_cross_entropy_with_logits(z, t), _bce, [(5, 3), (5, 3)],
         torch_fn=lambda L, z, t: L.nn.functional.binary_cross_entropy_with_logits(z, t)),
    Case("linear_relu", lambda L, x, w, b: L.ops.nn.linear_relu(x, w, b), lambda x, w, b: np.maximum(x @ w.T + b, 0),
         [(2, 3, 4), (5, 4), (5,)], torch_fn=lambda L, x, w, b: L.relu(L.nn.functional.linear(x, w, b))),
    Case("embedding", lambda L, w: L.nn.functional.embedding(L.tensor(EMBEDDING_INDEX), w),
         lambda w: w[EMBEDDING_INDEX], [(6, 3)]),
]


def make_inputs(case, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    if case.domain == "positive":
        return [rng.uniform(0.5, 2.0, size=s).astype(dtype) for s in case.shapes]
    return [rng.standard_normal(s).astype(dtype) for s in case.shapes]
