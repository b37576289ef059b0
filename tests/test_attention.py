"""Attention, MultiheadAttention and the Transformer encoder: gradient checks, PyTorch equality (outputs and
gradients, weights copied both ways), bad input, and a tiny Transformer that learns."""

import itertools

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

rng = np.random.default_rng(0)


def _leaf(*shape):
    return lamina.tensor(rng.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_scaled_dot_product_attention_gradchecks(mask):
    q, k, v = _leaf(2, 3, 4), _leaf(2, 5, 4), _leaf(2, 5, 3)
    kwargs = {}
    if mask == "bool":
        kwargs["attn_mask"] = rng.random((3, 5)) > 0.3
        kwargs["attn_mask"][:, 0] = True  # every query sees at least one key
    elif mask == "float":
        kwargs["attn_mask"] = lamina.tensor(rng.standard_normal((2, 3, 5)))
    elif mask == "causal":
        k, v = _leaf(2, 3, 4), _leaf(2, 3, 3)
        kwargs["is_causal"] = True
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs)  # noqa: E731
    assert lamina.gradcheck(fn, [q, k, v])
    assert lamina.gradgradcheck(fn, [q, k, v])


def test_multihead_attention_and_encoder_layer_gradcheck():
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x, mem = _leaf(2, 3, 4), _leaf(2, 5, 4)
    padding = np.array([[False] * 4 + [True], [False] * 5])
    fn = lambda x, mem, *ps: mha(x, mem, mem, key_padding_mask=padding)[0]  # noqa: E731
    assert lamina.gradcheck(fn, [x, mem, *mha.parameters()])
    assert lamina.gradgradcheck(lambda x, mem: fn(x, mem), [x, mem])
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu", norm_first=True).double()
    assert lamina.gradcheck(lambda x, *ps: layer(x, is_causal=True), [_leaf(3, 2, 4), *layer.parameters()])


def test_causal_mask_helper():
    mask = nn.Transformer.generate_square_subsequent_mask(3).detach().numpy()
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])
    np.testing.assert_array_equal(nn.TransformerEncoder.generate_square_subsequent_mask(3).detach().numpy(), mask)


def test_bad_input_names_the_layer_and_shapes():
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = lamina.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(4, num_heads=2\): attn_mask should have shape "
                                         r"\(3, 3\) or \(4, 3, 3\), got \(3, 4\)"):
        mha(x, x, x, attn_mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask should have shape \(2, 3\), got \(3, 2\)"):
        mha(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"query of shape lamina\.Size\(\[2, 3, 5\]\) should end in embed_dim 4"):
        mha(lamina.randn(2, 3, 5), x, x)
    with pytest.raises(ValueError, match=r"embed_dim 5 is not divisible by num_heads 2"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 2\) does not fit attention scores of shape "
                                         r"\(3, 5\)"):
        F.scaled_dot_product_attention(lamina.randn(3, 4), lamina.randn(5, 4), lamina.randn(5, 4),
                                       attn_mask=np.ones((2, 2), dtype=bool))


def test_encoder_survives_save_and_load(tmp_path):
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, norm=nn.LayerNorm(8))
    model.eval()
    lamina.save(model, tmp_path / "enc.npz")
    back = lamina.load(tmp_path / "enc.npz").eval()
    x = lamina.randn(2, 5, 8)
    np.testing.assert_array_equal(back(x).detach().numpy(), model(x).detach().numpy())


def test_tiny_transformer_learns_to_predict_the_next_token():
    """A 1-layer causal Transformer on a repeating pattern drops its loss far below the uniform guess."""
    lamina.manual_seed(0)
    vocab, context = 5, 8
    stream = np.tile(np.array([0, 1, 2, 3, 4, 2, 1]), 20)
    starts = np.arange(len(stream) - context - 1)
    x = np.stack([stream[s:s + context] for s in starts])
    y = np.stack([stream[s + 1:s + context + 1] for s in starts])

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.pos = nn.Embedding(vocab, 16), nn.Embedding(context, 16)
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True), 1)
            self.head = nn.Linear(16, vocab)

        def forward(self, tokens):
            h = self.embed(tokens) + self.pos(lamina.tensor(np.arange(tokens.shape[1])))
            return self.head(self.encoder(h, is_causal=True,
                                          mask=nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])))

    model = Tiny()
    opt = lamina.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = F.cross_entropy(model(lamina.tensor(x)).reshape(-1, vocab), lamina.tensor(y.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * np.log(vocab)


# --- against PyTorch ----------------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def _both(torch, ours, theirs):
    """Copy PyTorch's initial weights into ours and back: the keys and shapes must agree both ways."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()})


def _check_grads(ours, theirs, pairs):
    for ours_x, theirs_x in pairs:
        np.testing.assert_allclose(ours_x.grad.detach().numpy(), theirs_x.grad.detach().numpy(), rtol=1e-9, atol=1e-11)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


MHA_SWEEP = list(itertools.product(
    [False, True],  # batch_first
    [True, False],  # self-attention (query is key is value)
    ["none", "bool", "float", "3d"],  # attn_mask
    [False, True],  # key_padding_mask
    [(True, True), (True, False), (False, True)],  # need_weights, average_attn_weights
))[::3]


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Support for mismatched")  # PyTorch's note on mixing bool and float masks
@pytest.mark.parametrize("batch_first,self_attention,mask,padding,weights", MHA_SWEEP)
def test_multihead_attention_matches_torch(batch_first, self_attention, mask, padding, weights):
    torch = _torch()
    embed, heads, batch, length = 6, 3, 2, 4
    source = length if self_attention else 5
    theirs = torch.nn.MultiheadAttention(embed, heads, batch_first=batch_first).double()
    ours = nn.MultiheadAttention(embed, heads, batch_first=batch_first).double()
    _both(torch, ours, theirs)

    def arrange(n):
        return rng.standard_normal((batch, n, embed) if batch_first else (n, batch, embed))

    q = arrange(length)
    k, v = (q, q) if self_attention else (arrange(source), arrange(source))
    kwargs = {"need_weights": weights[0], "average_attn_weights": weights[1]}
    attn_mask = None
    if mask == "bool":
        attn_mask = rng.random((length, source)) < 0.3
        attn_mask[:, 0] = False
    elif mask == "float":
        attn_mask = rng.standard_normal((length, source))
    elif mask == "3d":
        attn_mask = rng.standard_normal((batch * heads, length, source))
    key_padding = None
    if padding:
        key_padding = np.zeros((batch, source), dtype=bool)
        key_padding[0, -2:] = True
    tq = torch.tensor(q, requires_grad=True)
    tk, tv = (tq, tq) if self_attention else (torch.tensor(k, requires_grad=True), torch.tensor(v, requires_grad=True))
    lq = lamina.tensor(q, requires_grad=True)
    lk, lv = (lq, lq) if self_attention else (lamina.tensor(k, requires_grad=True),
                                              lamina.tensor(v, requires_grad=True))
    out_t, w_t = theirs(tq, tk, tv, key_padding_mask=None if key_padding is None else torch.tensor(key_padding),
                        attn_mask=None if attn_mask is None else torch.tensor(attn_mask), **kwargs)
    out_l, w_l = ours(lq, lk, lv, key_padding_mask=key_padding, attn_mask=attn_mask, **kwargs)
    np.testing.assert_allclose(out_l.detach().numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    if weights[0]:
        np.testing.assert_allclose(w_l.detach().numpy(), w_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    else:
        assert w_l is None and w_t is None
    g = rng.standard_normal(out_l.shape)
    (out_t * torch.tensor(g)).sum().backward()
    (out_l * lamina.tensor(g)).sum().backward()
    _check_grads(ours, theirs, [(lq, tq)] + ([] if self_attention else [(lk, tk), (lv, tv)]))


@pytest.mark.torch
@pytest.mark.parametrize("mask", ["bool", "float", "causal"])
def test_scaled_dot_product_attention_matches_torch(mask):
    torch = _torch()
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    kwargs = {"is_causal": True} if mask == "causal" else {
        "attn_mask": rng.random((4, 4)) > 0.3 if mask == "bool" else rng.standard_normal((3, 4, 4))}
    if mask == "bool":
        kwargs["attn_mask"][:, 0] = True
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)),
        **{key: torch.tensor(val) if isinstance(val, np.ndarray) else val for key, val in kwargs.items()})
    ours = F.scaled_dot_product_attention(*(lamina.tensor(a) for a in (q, k, v)), **kwargs)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("norm_first,activation,batch_first,masks", [
    (False, "relu", False, False), (True, "gelu", True, True), (False, "gelu", True, True),
    (True, "relu", False, True)])
def test_transformer_encoder_matches_torch(norm_first, activation, batch_first, masks):
    torch = _torch()
    d_model, heads, batch, length = 8, 2, 3, 5
    kwargs = {"dim_feedforward": 12, "dropout": 0.0, "activation": activation, "batch_first": batch_first,
              "norm_first": norm_first}
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(d_model, heads, **kwargs), 2,
                                         norm=torch.nn.LayerNorm(d_model), enable_nested_tensor=False).double()
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, heads, **kwargs), 2,
                                 norm=nn.LayerNorm(d_model)).double()
    _both(torch, ours, theirs)
    x = rng.standard_normal((batch, length, d_model) if batch_first else (length, batch, d_model))
    mask = padding = None
    if masks:
        mask = nn.Transformer.generate_square_subsequent_mask(length).detach().numpy().astype(np.float64)
        padding = np.zeros((batch, length), dtype=bool)
        padding[1, -2:] = True
    tx, lx = torch.tensor(x, requires_grad=True), lamina.tensor(x, requires_grad=True)
    out_t = theirs(tx, mask=None if mask is None else torch.tensor(mask),
                   src_key_padding_mask=None if padding is None else torch.tensor(padding))
    out_l = ours(lx, mask=mask, src_key_padding_mask=padding)
    np.testing.assert_allclose(out_l.detach().numpy(), out_t.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(out_l.shape)
    (out_t * torch.tensor(g)).sum().backward()
    (out_l * lamina.tensor(g)).sum().backward()
    _check_grads(ours, theirs, [(lx, tx)])


@pytest.mark.parametrize("affine", [True, False])
def test_fused_layer_norm_matches_its_reference_to_second_order(affine):
    from lamina.ops.nn import layer_norm, layer_norm_reference

    x = _leaf(3, 2, 4)
    params = [_leaf(2, 4), _leaf(2, 4)] if affine else []
    np.testing.assert_allclose(layer_norm(x, 2, *params).detach().numpy(),
                               layer_norm_reference(x, *params, dims=2).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    assert lamina.gradcheck(lambda *a: layer_norm(a[0], 2, *a[1:]), [x, *params])
    assert lamina.gradgradcheck(lambda *a: layer_norm(a[0], 2, *a[1:]), [x, *params])


ATTENTION_CASES = list(itertools.product(
    [True, False],  # packed: one (B, L, 3 H E) projection, as self-attention makes
    ["none", "causal", "padding"],  # bias
    [False, True],  # a dropout mask on the weights
))


@pytest.mark.parametrize("packed,bias,dropout", ATTENTION_CASES)
def test_fused_attention_matches_its_reference_to_second_order(packed, bias, dropout):
    from lamina.ops.attention import Attention, attention_reference

    batch, heads, length, source, width = 2, 2, 3, (3 if packed else 4), 4
    inputs = [_leaf(batch, length, 3 * width)] if packed else [_leaf(batch, length, width),
                                                                _leaf(batch, source, width), _leaf(batch, source, 6)]
    bias_array = {"none": None, "causal": np.triu(np.full((length, source), -np.inf), 1),
                  "padding": np.where(np.arange(source) >= source - 1, -np.inf, 0.0).reshape(1, 1, 1, source)}[bias]
    keep = None
    if dropout:
        keep = (rng.random((batch, heads, source, length)) > 0.3) / 0.7  # transposed, as the op holds weights
    options = {"heads": heads, "scale": 0.7, "bias": bias_array, "keep": keep, "packed": packed}
    fused = lambda *a: Attention(heads, 0.7, bias_array, keep, packed)(*a)  # noqa: E731
    out = fused(*inputs)
    np.testing.assert_allclose(out.detach().numpy(), attention_reference(*inputs, **options).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    ours = lamina.grad((out * lamina.tensor(g)).sum(), inputs)
    theirs = lamina.grad((attention_reference(*inputs, **options) * lamina.tensor(g)).sum(), inputs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    assert lamina.gradcheck(fused, inputs)
    assert lamina.gradgradcheck(fused, inputs)


def test_fused_attention_grads_only_what_is_asked():
    from lamina.ops.attention import attention

    q, k = _leaf(2, 3, 4), _leaf(2, 5, 4)
    v = lamina.tensor(rng.standard_normal((2, 5, 4)))  # no gradient wanted
    out = attention(q, k, v, 2, 0.5)
    dq, dk = lamina.grad(out.sum(), [q, k])
    assert dq.shape == q.shape and dk.shape == k.shape and v.grad is None


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoder_layer_runs_the_fused_attention_and_matches_torch(dtype):
    torch = _torch()
    theirs = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True).to(
        getattr(torch, dtype))
    ours = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True, dtype=dtype)
    _both(torch, ours, theirs)
    x = rng.standard_normal((3, 5, 8)).astype(dtype)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=dtype)
    seen = []
    with lamina.autograd.record_ops(lambda fn, xs, out: seen.append(type(fn).__name__)):
        lx = lamina.tensor(x, requires_grad=True)
        out = ours(lx, src_mask=mask, is_causal=True)
    assert "Attention" in seen and "Softmax" not in seen and out.dtype == np.dtype(dtype)
    assert "LinearReLU" in seen and "ReLU" not in seen
    tx = torch.tensor(x, requires_grad=True)
    want = theirs(tx, src_mask=torch.tensor(mask.numpy()), is_causal=True)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), **tol)
    g = rng.standard_normal(out.shape).astype(dtype)
    (out * lamina.tensor(g)).sum().backward()
    (want * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), **tol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), err_msg=name, **tol)
