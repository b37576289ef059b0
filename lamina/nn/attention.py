"""Attention and the Transformer encoder, with PyTorch's names, arguments and state-dict keys.

Attention is one fused op (ops.attention: batched products around one softmax kernel, reading the heads
straight out of the projections) where no one asks for the weights; where they are asked for, the composite
of functional.scaled_dot_product_attention runs, which returns them. Masks follow PyTorch: here, in MultiheadAttention
and the encoder, bool masks are True where a query may NOT attend (`attn_mask`) or where a
key is padding (`key_padding_mask`); a float mask is added to the scores (-inf forbids).
"""

import copy
import math

import numpy as np

from lamina import ops
from lamina.autograd import Tensor, as_operand, wrap
from lamina.backend import array_module, default_float, get_array_module
from lamina.creation import empty, zeros
from lamina.nn import functional as F
from lamina.nn import init
from lamina.nn.functional import _additive, _attend
from lamina.nn.layers import Dropout, Linear
from lamina.nn.module import Module, ModuleList, Parameter
from lamina.nn.normalization import LayerNorm
from lamina.ops.attention import attention
from lamina.ops.nn import linear_relu


def generate_square_subsequent_mask(sz, dtype=None, device=None):
    """The causal mask for `sz` positions: 0 on and below the diagonal, -inf above (a float mask), on `device`
    (default: the default device)."""
    xp = array_module(device)
    return wrap(xp.triu(xp.full((sz, sz), -np.inf, dtype=dtype or default_float), k=1))


class MultiheadAttention(Module):
    """Multi-head attention as torch.nn.MultiheadAttention (same parameters: in_proj_weight, in_proj_bias,
    out_proj.weight, out_proj.bias). Returns (output, weights); weights are None unless need_weights.

    >>> mha = lamina.nn.MultiheadAttention(8, num_heads=2, batch_first=True)
    >>> x = lamina.randn(3, 5, 8)
    >>> out, weights = mha(x, x, x, key_padding_mask=lamina.zeros(3, 5) > 0)
    >>> out.shape, weights.shape
    (lamina.Size([3, 5, 8]), lamina.Size([3, 5, 5]))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if add_bias_kv or add_zero_attn or kdim not in (None, embed_dim) or vdim not in (None, embed_dim):
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and kdim/vdim other than "
                                      "embed_dim are not supported")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        dtype = dtype or default_float
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
        self.in_proj_bias = Parameter(zeros(3 * embed_dim, dtype=dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)  # PyTorch's init; out_proj keeps Linear's, with a zero bias
        if bias:
            init.zeros_(self.out_proj.bias)

    def _name(self):
        return f"MultiheadAttention({self.embed_dim}, num_heads={self.num_heads})"

    def _project(self, query, key, value):
        e, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:  # self-attention: one product for q, k and v
            return ops.chunk(F.linear(query, w, b), 3, -1)
        parts = [(w[i * e:(i + 1) * e], None if b is None else b[i * e:(i + 1) * e]) for i in range(3)]
        return [F.linear(x, pw, pb) for x, (pw, pb) in zip((query, key, value), parts)]

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        name = self._name()
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{name}: query, key and value must all be 2-D (unbatched) or 3-D, got shapes "
                             f"{query.shape}, {key.shape}, {value.shape}")
        for what, t in (("query", query), ("key", key), ("value", value)):
            if t.shape[-1] != self.embed_dim:
                raise ValueError(f"{name}: {what} of shape {t.shape} should end in embed_dim {self.embed_dim}")
        unbatched = query.ndim == 2
        same = query is key and key is value
        if unbatched:
            query, key, value = (ops.unsqueeze(t, 0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (ops.transpose(t, 0, 1) for t in (query, key, value))
        if same:
            key = value = query
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"{name}: key {key.shape} and value {value.shape} must match, and share the batch "
                             f"of query {query.shape} (shapes here batch first)")
        batch, length, source, heads = query.shape[0], query.shape[1], key.shape[1], self.num_heads
        scores = (batch, heads, length, source)
        if attn_mask is None and is_causal:
            attn_mask = generate_square_subsequent_mask(length, query.dtype, query.device)
        bias = None
        if attn_mask is not None:
            m = attn_mask.array if isinstance(attn_mask, Tensor) else get_array_module(query.array).asarray(attn_mask)
            if m.ndim == 3:
                if m.shape != (batch * heads, length, source):
                    raise ValueError(f"{name}: a 3-D attn_mask should have shape {(batch * heads, length, source)}, "
                                     f"got {m.shape}")
                attn_mask = ops.reshape(as_operand(attn_mask), scores)
            elif m.shape != (length, source):
                raise ValueError(f"{name}: attn_mask should have shape {(length, source)} or "
                                 f"{(batch * heads, length, source)}, got {m.shape}")
            bias = _additive(attn_mask, query.dtype, False, f"{name}: attn_mask", scores, query)
        if key_padding_mask is not None:
            m = (key_padding_mask.array if isinstance(key_padding_mask, Tensor)
                 else get_array_module(query.array).asarray(key_padding_mask))
            expected = (source,) if unbatched else (batch, source)
            if m.shape != expected:
                raise ValueError(f"{name}: key_padding_mask should have shape {expected}, got {m.shape}")
            padding = _additive(m.reshape(batch, 1, 1, source), query.dtype, False, f"{name}: key_padding_mask",
                                scores, query)
            bias = padding if bias is None else bias + padding
        dropout_p = self.dropout if self.training else 0.0
        scale = 1 / math.sqrt(self.head_dim)
        if not need_weights and (bias is None or not bias.requires_grad):  # one fused op (ops.attention)
            if same:
                packed = F.linear(query, self.in_proj_weight, self.in_proj_bias)
                out = attention(packed, None, None, heads, scale, None if bias is None else bias.array, dropout_p)
            else:
                q, k, v = self._project(query, key, value)
                out = attention(q, k, v, heads, scale, None if bias is None else bias.array, dropout_p)
            weights = None
        else:
            q, k, v = self._project(query, query if same else key, query if same else value)
            q, k, v = (ops.permute(ops.reshape(t, (batch, t.shape[1], heads, self.head_dim)), 0, 2, 1, 3)
                       for t in (q, k, v))
            out, weights = _attend(q, k, v, bias, dropout_p, scale)
            out = ops.reshape(ops.permute(out, 0, 2, 1, 3), (batch, length, self.embed_dim))
        out = self.out_proj(out)
        if unbatched:
            out = ops.squeeze(out, 0)
        elif not self.batch_first:
            out = ops.transpose(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (ops.squeeze(weights, 0) if unbatched else weights)


_ACTIVATIONS = {"relu": ops.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and LayerNorm (after each
    block, or before with norm_first), as torch.nn.TransformerEncoderLayer, with the same state-dict keys."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, dtype=None):
        super().__init__()
        if isinstance(activation, str) and activation not in _ACTIVATIONS:
            raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                             f"not {activation!r}")
        self.activation = _ACTIVATIONS[activation] if isinstance(activation, str) else activation
        self.norm_first, self.batch_first = norm_first, batch_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def _attention_block(self, x, mask, key_padding_mask, is_causal):
        out = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=mask,
                             is_causal=is_causal)[0]
        return self.dropout1(out)

    def _feed_forward_block(self, x):
        first = self.linear1
        if self.activation is ops.relu and type(first) is Linear and not first._forward_hooks \
                and "forward" not in first.__dict__:  # nothing watches linear1: it runs with the ReLU as one op
            hidden = linear_relu(x, first.weight, first.bias)
        else:
            hidden = self.activation(first(x))
        return self.dropout2(self.linear2(self.dropout(hidden)))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._attention_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._feed_forward_block(self.norm2(x))
        x = self.norm1(x + self._attention_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._feed_forward_block(x))


class TransformerEncoder(Module):
    """`num_layers` copies of `encoder_layer` (state-dict keys layers.0..., as PyTorch), then an optional norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)


class Transformer:
    """Only the static causal-mask helper of torch.nn.Transformer, so that
    `nn.Transformer.generate_square_subsequent_mask(n)` works; the encoder-decoder model itself is not provided."""

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("nn.Transformer (encoder-decoder) is not provided; use TransformerEncoder, "
                                  "and Transformer.generate_square_subsequent_mask for a causal mask")
