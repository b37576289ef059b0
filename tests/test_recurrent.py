"""RNN, LSTM, GRU and their cells: the fused sequence ops against their step-by-step twins, gradient checks,
PyTorch equality (outputs, states and every gradient, weights copied both ways), bad input, and learning."""

import itertools

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.ops import recurrent as R

rng = np.random.default_rng(0)


def _leaf(*shape):
    return lamina.tensor(rng.standard_normal(shape), requires_grad=True)


def _op_cases(steps=4, batch=3, hidden=2):
    """(name, fused fn, reference fn, inputs) for each sequence op."""
    lstm = [_leaf(steps, batch, 4 * hidden), _leaf(batch, hidden), _leaf(batch, hidden), _leaf(4 * hidden, hidden)]
    gru = [_leaf(steps, batch, 3 * hidden), _leaf(batch, hidden), _leaf(3 * hidden, hidden), _leaf(3 * hidden)]
    rnn = [_leaf(steps, batch, hidden), _leaf(batch, hidden), _leaf(hidden, hidden)]
    return [
        ("lstm", R.lstm_sequence, R.lstm_reference, lstm, ()),
        ("gru", R.gru_sequence, R.gru_reference, gru, ()),
        ("rnn_tanh", R.rnn_sequence, R.rnn_reference, rnn, ("tanh",)),
        ("rnn_relu", R.rnn_sequence, R.rnn_reference, rnn, ("relu",)),
    ]


SIZES = [None, (3, 3, 2, 1)]  # every row every step; then rows of lengths 4, 3, 2 (a packed batch)


@pytest.mark.parametrize("reverse,batch_sizes", list(itertools.product([False, True], SIZES)))
def test_sequence_ops_match_their_reference_and_gradcheck(reverse, batch_sizes):
    for name, fused, reference, inputs, extra in _op_cases():
        args = (*extra, reverse, batch_sizes)
        np.testing.assert_allclose(fused(*inputs, *args).detach().numpy(), reference(*inputs, *args).detach().numpy(),
                                   rtol=1e-12, atol=1e-12, err_msg=name)
        assert lamina.gradcheck(lambda *xs, f=fused, a=args: f(*xs, *a), inputs), name


def test_sequence_ops_second_order_through_the_reference():
    for name, fused, _, inputs, extra in _op_cases(steps=3, batch=2, hidden=2):
        assert lamina.gradgradcheck(lambda *xs, f=fused, e=extra: f(*xs, *e, True, (2, 2, 1)),
                                    inputs), name


def test_padded_rows_output_zeros_and_keep_their_state():
    _, fused, _, (gx, h0, c0, w), _ = _op_cases()[0]
    out = fused(gx, h0, c0, w, False, (3, 3, 2, 1)).detach().numpy()
    assert (out[3, 1:] == 0).all() and (out[2, 2:] == 0).all()
    np.testing.assert_array_equal(out[4, 2], out[1, 2])  # the final h of the length-2 row is its step-2 output


def test_fused_ops_stay_float32():
    lstm = nn.LSTM(3, 4)
    out, (h, c) = lstm(lamina.randn(5, 2, 3))
    out.sum().backward()
    assert out.dtype == h.dtype == c.dtype == lstm.weight_hh_l0.grad.dtype == np.float32


# --- modules -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_state_dict_keys_and_init(cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True)
    gates = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3}[cls] * 4
    keys = {k: v.shape for k, v in layer.state_dict().items()}
    assert list(keys)[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert keys["weight_ih_l0_reverse"] == (gates, 3) and keys["weight_ih_l1"] == (gates, 8)
    assert len(keys) == 16
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.detach().numpy()).max() <= bound for p in layer.parameters())


def test_layer_gradcheck_bidirectional_two_layers_with_lengths_and_state():
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True, batch_first=True).double()
    x, h0, c0 = _leaf(3, 4, 2), _leaf(4, 3, 3), _leaf(4, 3, 3)
    lengths = [2, 4, 1]

    def run(x, h0, c0, *params):
        out, (h, c) = lstm(x, (h0, c0), lengths=lengths)
        return out, h, c

    assert lamina.gradcheck(run, [x, h0, c0, *lstm.parameters()])


def test_cells_check_like_any_layer():
    from layer_check import check_layer

    check_layer(lambda: nn.GRUCell(3, 2), (4, 3))
    check_layer(lambda: nn.RNNCell(3, 2, nonlinearity="relu"), (4, 3), second_order=False)


def test_bad_input_names_the_layer_and_shapes():
    lstm = nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM\(4, 3, num_layers=2\).*4 features.*\(5, 2, 6\)"):
        lstm(lamina.randn(5, 2, 6))
    with pytest.raises(ValueError, match=r"LSTM.*2-D .* or 3-D.*\(5,\)"):
        lstm(lamina.randn(5))
    with pytest.raises(ValueError, match=r"h_0 should have shape \(2, 2, 3\), got \(1, 2, 3\)"):
        lstm(lamina.randn(5, 2, 4), (lamina.zeros(1, 2, 3), lamina.zeros(2, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU.*lengths must lie in \[1, 5\]"):
        nn.GRU(4, 3)(lamina.randn(5, 2, 4), lengths=[6, 2])
    with pytest.raises(ValueError, match=r"RNN.*one integer per sequence \(2\)"):
        nn.RNN(4, 3)(lamina.randn(5, 2, 4), lengths=[5, 2, 1])
    with pytest.raises(ValueError, match=r"LSTMCell\(4, 3\).*\(batch, 4\).*\(2, 5\)"):
        nn.LSTMCell(4, 3)(lamina.randn(2, 5))


def test_lstm_learns_to_add_up_a_sequence():
    """Regression on the running sum of 8 signed inputs: the loss falls well below predicting zero."""
    lamina.manual_seed(0)
    data = np.random.default_rng(1)
    x = data.choice([-1.0, 1.0], size=(256, 8, 1)).astype(np.float32)
    y = x.sum(1)
    lstm, head = nn.LSTM(1, 16, batch_first=True), nn.Linear(16, 1)
    opt = lamina.optim.Adam([*lstm.parameters(), *head.parameters()], lr=0.02)
    for _ in range(150):
        out, _ = lstm(lamina.tensor(x))
        loss = F.mse_loss(head(out[:, -1]), lamina.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * float((y**2).mean())


# --- against PyTorch ----------------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def _copy_to_torch(torch, ours, theirs):
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()})


SWEEP = [
    # (class, kwargs, with initial state, lengths)
    ("RNN", {"nonlinearity": "tanh"}, False, None),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}, True, [3, 5, 1, 4]),
    ("LSTM", {}, False, None),
    ("LSTM", {"num_layers": 2, "batch_first": True}, True, None),
    ("LSTM", {"bidirectional": True, "batch_first": True}, False, [5, 2, 3, 5]),
    ("LSTM", {"num_layers": 3, "bidirectional": True, "bias": False}, True, [1, 5, 5, 2]),
    ("GRU", {}, True, None),
    ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}, False, [4, 5, 2, 2]),
    ("GRU", {"bias": False}, False, [5, 4, 3, 1]),
]


@pytest.mark.torch
@pytest.mark.parametrize("kind,kwargs,with_state,lengths", SWEEP)
def test_matches_torch_outputs_states_and_gradients(kind, kwargs, with_state, lengths):
    torch = _torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    steps, batch, features, hidden = 5, 4, 3, 6
    theirs = getattr(torch.nn, kind)(features, hidden, **kwargs).double()
    ours = getattr(nn, kind)(features, hidden, **kwargs).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})  # torch -> lamina
    _copy_to_torch(torch, ours, theirs)  # and back: the same keys and shapes both ways
    batch_first = kwargs.get("batch_first", False)
    x = rng.standard_normal((batch, steps, features) if batch_first else (steps, batch, features))
    directions = 2 if kwargs.get("bidirectional") else 1
    state_shape = (kwargs.get("num_layers", 1) * directions, batch, hidden)
    states = [rng.standard_normal(state_shape) for _ in range(2 if kind == "LSTM" else 1)] if with_state else None

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states] if states else None
    hx_t = None if st is None else (tuple(st) if kind == "LSTM" else st[0])
    if lengths is None:
        out_t, fin_t = theirs(xt, hx_t)
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out_t, fin_t = theirs(packed, hx_t)
        out_t, _ = pad_packed_sequence(out_t, batch_first=batch_first, total_length=steps)
    xl = lamina.tensor(x, requires_grad=True)
    sl = [lamina.tensor(s, requires_grad=True) for s in states] if states else None
    hx_l = None if sl is None else (tuple(sl) if kind == "LSTM" else sl[0])
    out_l, fin_l = ours(xl, hx_l, lengths=lengths)
    fin_t = fin_t if kind == "LSTM" else (fin_t,)
    fin_l = fin_l if kind == "LSTM" else (fin_l,)
    np.testing.assert_allclose(out_l.detach().numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(fin_l, fin_t):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)

    weights = [rng.standard_normal(out_l.shape)] + [rng.standard_normal(f.shape) for f in fin_l]
    sum(torch.sum(o * torch.tensor(w)) for o, w in zip([out_t, *fin_t], weights)).backward()
    sum((o * lamina.tensor(w)).sum() for o, w in zip([out_l, *fin_l], weights)).backward()
    np.testing.assert_allclose(xl.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-9, atol=1e-12)
    for a, b in zip(sl or [], st or []):
        np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), rtol=1e-9, atol=1e-12)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(kind):
    torch = _torch()
    theirs = getattr(torch.nn, kind)(3, 5).double()
    ours = getattr(nn, kind)(3, 5).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((4, 3))
    states = [rng.standard_normal((4, 5)) for _ in range(2 if kind == "LSTMCell" else 1)]
    xt, xl = torch.tensor(x, requires_grad=True), lamina.tensor(x, requires_grad=True)
    st = [torch.tensor(s) for s in states]
    out_t = theirs(xt, tuple(st) if kind == "LSTMCell" else st[0])
    out_l = ours(xl, tuple(lamina.tensor(s) for s in states) if kind == "LSTMCell" else lamina.tensor(states[0]))
    out_t = out_t if isinstance(out_t, tuple) else (out_t,)
    out_l = out_l if isinstance(out_l, tuple) else (out_l,)
    for a, b in zip(out_l, out_t):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    sum(o.sum() * (i + 1) for i, o in enumerate(out_t)).backward()
    sum(o.sum() * (i + 1) for i, o in enumerate(out_l)).backward()
    np.testing.assert_allclose(xl.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.weight_hh.grad.numpy(), theirs.weight_hh.grad.numpy(), rtol=1e-9, atol=1e-12)
    # unbatched input and no state, as PyTorch allows
    np.testing.assert_allclose((ours(lamina.tensor(x[0]))[0] if kind == "LSTMCell" else
                                ours(lamina.tensor(x[0]))).detach().numpy(),
                               (theirs(torch.tensor(x[0]))[0] if kind == "LSTMCell" else
                                theirs(torch.tensor(x[0]))).detach().numpy(), rtol=1e-10)


@pytest.mark.torch
def test_dropout_between_layers_only_in_training():
    torch = _torch()
    theirs = torch.nn.GRU(3, 4, num_layers=2, dropout=0.5).double().eval()
    ours = nn.GRU(3, 4, num_layers=2, dropout=0.5).double().eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 2, 3))
    np.testing.assert_allclose(ours(lamina.tensor(x))[0].detach().numpy(), theirs(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-10)
    ours.train()
    a, b = ours(lamina.tensor(x))[0].detach().numpy(), ours(lamina.tensor(x))[0].detach().numpy()
    assert not np.allclose(a, b)  # dropout draws a new mask each call
