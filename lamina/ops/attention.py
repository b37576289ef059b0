"""Multi-head attention as one op: softmax(q k^T * scale + bias) v for every head, with its backward written out.

Composed of primitives, attention costs a dozen ops (splitting the heads out of the projections, the
products, the scaling, the mask, the softmax, merging the heads back) and as many passes over the
(B, H, L, S) scores, each kept for backward. This op reads q, k and v in the layout the projections
make, (B, L, H * E), views into one packed projection included, and writes its result with the heads
merged: its matrix products read and write those layouts in place, and the softmax and its backward
are one kernel each (kernels.attention_softmax_). The scores are held transposed, (B, H, S, L) with the keys
down the rows, so that each query's softmax runs down a column: elementwise passes over whole rows, where
reductions along rows of 32 were one dependent chain each (1.6 times slower); BLAS reads either layout.

Second derivatives: backward with create_graph=True differentiates `attention_reference`, the same
computation in lamina ops, so they stay exact.
"""

import numpy as np

from lamina import kernels
from lamina.autograd import Function, is_grad_enabled, wrap
from lamina.backend import generator_for, get_array_module
from lamina.ops.linalg import matmul
from lamina.ops.nn import differentiate_reference
from lamina.ops.reductions import softmax
from lamina.ops.shape import chunk, permute, reshape, transpose


def _heads(a, heads):
    """(B, L, H * E) as (B, H, L, E): a view, whatever a's strides."""
    batch, length, width = a.shape
    return a.reshape(batch, length, heads, width // heads).transpose(0, 2, 1, 3)


class Attention(Function):
    """Inputs q (B, L, H E), k and v (B, S, H E), or, when `packed`, one (B, L, 3 H E) array holding q, k and v
    side by side (a self-attention's one projection). `bias` is a constant array broadcastable to (B, H, L, S)
    added to the scaled scores (-inf forbids), or None; `keep` the dropout mask on the weights, transposed as the
    op holds them, (B, H, S, L), already scaled by 1 / (1 - p), or None. Result (B, L, H E)."""

    def __init__(self, heads, scale, bias=None, keep=None, packed=False):
        if bias is not None and bias.ndim < 2:  # held as (..., L, S), to be read transposed
            bias = bias.reshape((1,) * (2 - bias.ndim) + bias.shape)
        self.heads, self.scale, self.bias, self.keep, self.packed = heads, scale, bias, keep, packed

    def _split(self, arrays):
        if not self.packed:
            return arrays
        (qkv,) = arrays
        width = qkv.shape[-1] // 3
        return qkv[..., :width], qkv[..., width:2 * width], qkv[..., 2 * width:]

    def forward(self, *arrays):
        xp = get_array_module(arrays[0])
        q, k, v = (_heads(a, self.heads) for a in self._split(arrays))
        weights_t = xp.matmul(k, q.swapaxes(-1, -2))  # (B, H, S, L): k q^T, the scores transposed
        kernels.attention_softmax_(weights_t, self.scale, None if self.bias is None else self.bias.swapaxes(-1, -2))
        self.weights_t = weights_t
        out = xp.empty((*q.shape[:1], q.shape[2], q.shape[1] * v.shape[3]), dtype=weights_t.dtype)
        kept = weights_t if self.keep is None else weights_t * self.keep
        xp.matmul(kept.swapaxes(-1, -2), v, out=_heads(out, self.heads))
        return out

    def release(self):
        super().release()
        self.weights_t = self.keep = None

    def backward(self, gy):
        if is_grad_enabled():
            reference = lambda *a: attention_reference(*a, heads=self.heads, scale=self.scale,  # noqa: E731
                                                       bias=self.bias, keep=self.keep, packed=self.packed)
            return differentiate_reference(self, reference, gy)
        arrays = [t.array for t in self.inputs]
        xp = get_array_module(arrays[0])
        q, k, v = (_heads(a, self.heads) for a in self._split(arrays))
        grads = [xp.empty_like(a) for a in arrays]  # written in place through the views below
        dq, dk, dv = (_heads(a, self.heads) for a in self._split(grads))
        need_q, need_k, need_v = [True] * 3 if self.packed else self.needs_input_grad
        g, weights_t = _heads(gy.array, self.heads), self.weights_t
        kept = weights_t if self.keep is None else weights_t * self.keep
        if need_v:
            xp.matmul(kept, g, out=dv)
        if need_q or need_k:
            dweights_t = xp.matmul(v, g.swapaxes(-1, -2))
            if self.keep is not None:
                dweights_t *= self.keep
            dscores_t = kernels.attention_softmax_backward_(dweights_t, weights_t, self.scale)  # d(k q^T)
            if need_q:
                xp.matmul(dscores_t.swapaxes(-1, -2), k, out=dq)
            if need_k:
                xp.matmul(dscores_t, q, out=dk)
        if self.packed:
            return (wrap(grads[0]),)
        return tuple(wrap(a) if need else None for a, need in zip(grads, self.needs_input_grad))


def attention(q, k, v, heads, scale, bias=None, dropout_p=0.0):
    """softmax(q k^T * scale + bias) v per head, q (B, L, H E), k and v (B, S, H E) -> (B, L, H E); with k and
    v None, q is the packed (B, L, 3 H E) projection of a self-attention. bias: a constant array (or None)
    broadcastable to (B, H, L, S). dropout_p > 0 drops attention weights, as in training."""
    packed = k is None
    ref = q.array
    keep = None
    if dropout_p > 0:
        length, source = q.shape[1], (q.shape[1] if packed else k.shape[1])
        shape = (q.shape[0], heads, source, length)  # transposed, as the op holds the weights
        keep = generator_for(ref).random(shape, dtype=np.float32) >= dropout_p  # drawn on the device of q
        keep = keep * ref.dtype.type(1 / (1 - dropout_p))
    op = Attention(heads, scale, bias, keep, packed)
    return op(q) if packed else op(q, k, v)


def attention_reference(*inputs, heads, scale, bias=None, keep=None, packed=False):
    """Attention in lamina ops: the twin it is tested against and differentiated through for second order."""
    q, k, v = chunk(inputs[0], 3, -1) if packed else inputs
    split = lambda t: permute(reshape(t, (t.shape[0], t.shape[1], heads, -1)), 0, 2, 1, 3)  # noqa: E731
    scores = matmul(split(q), transpose(split(k), -2, -1)) * scale
    if bias is not None:
        scores = scores + wrap(bias)
    weights = softmax(scores, -1)
    if keep is not None:
        weights = weights * wrap(keep.swapaxes(-1, -2))
    out = permute(matmul(weights, split(v)), 0, 2, 1, 3)
    return reshape(out, (out.shape[0], out.shape[1], -1))
