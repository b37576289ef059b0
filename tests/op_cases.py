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
    Case("matmul_batched", lambda L, a, b: a @ b, np.matmul, [(2, 3, 4), (4, 5)]),
    Case("matmul_broadcast", lambda L, a, b: a @ b, np.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    # convolution and pooling
    Case("conv2d", lambda L, x, w: L.nn.functional.conv2d(x, w, stride=2, padding=1),
         lambda x, w: _conv2d(x, w, 2, 1), [(2, 3, 6, 5), (4, 3, 3, 3)]),
    Case("max_pool2d", lambda L, x: L.nn.functional.max_pool2d(x, 2), lambda x: _pool2d(x, 2, np.max), [(2, 3, 5, 4)]),
    Case("avg_pool2d", lambda L, x: L.nn.functional.avg_pool2d(x, 2), lambda x: _pool2d(x, 2, np.mean), [(2, 3, 4, 6)]),
    # fused kernels
    Case("bce_with_logits", lambda L, z, t: L.binary_cross_entropy_with_logits(z, t), _bce, [(5, 3), (5, 3)],
         torch_fn=lambda L, z, t: L.nn.functional.binary_cross_entropy_with_logits(z, t)),
]


def make_inputs(case, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    if case.domain == "positive":
        return [rng.uniform(0.5, 2.0, size=s).astype(dtype) for s in case.shapes]
    return [rng.standard_normal(s).astype(dtype) for s in case.shapes]
