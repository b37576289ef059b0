"""Recurrent layers with PyTorch's names, parameters and results: RNN, LSTM, GRU and their one-step cells.

Each layer, in each direction, projects the inputs of all time steps in one matrix
product, then hands the recurrence to one whole-sequence op of lamina.ops.recurrent.

Variable-length batches take a `lengths` argument (one length per sequence, each
between 1 and the padded length), rather than PyTorch's PackedSequence:

    output, (h_n, c_n) = lstm(padded, lengths=[5, 3, 2])

is what PyTorch computes for `lstm(pack_padded_sequence(padded, [5, 3, 2],
enforce_sorted=False))` followed by `pad_packed_sequence(..., total_length=T)`:
each sequence stops at its length, its final state is the state at its last real
step (the first step, going backward), and the outputs past its length are zeros.
The lengths need not be sorted.
"""

import math

import numpy as np

from lamina import ops
from lamina.autograd import Tensor
from lamina.backend import default_float, get_array_module
from lamina.creation import empty, zeros
from lamina.nn import functional as F
from lamina.nn import init
from lamina.nn.module import Module, Parameter
from lamina.ops.recurrent import gru_sequence, lstm_sequence, rnn_sequence

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _batch_sizes(lengths, steps, batch, layer):
    """Sort order and per-step batch sizes for `lengths` (None when every sequence runs all steps)."""
    if lengths is None:
        return None, None
    # on the host, wherever the tensor lives: the lengths decide the batch size of each step
    lengths = np.asarray(lengths._host_array() if isinstance(lengths, Tensor) else lengths)
    if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"{layer}: lengths must hold one integer per sequence ({batch}), got shape {lengths.shape} "
                         f"and dtype {lengths.dtype}")
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"{layer}: lengths must lie in [1, {steps}] (the padded length), got "
                         f"[{lengths.min()}, {lengths.max()}]")
    order = np.argsort(-lengths, kind="stable")
    sizes = tuple(int(n) for n in (lengths[:, None] > np.arange(steps)).sum(0))
    return (None if (order == np.arange(batch)).all() else order), sizes


def _run_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, batch_sizes):
    """One layer in one direction on time-major x (T, B, F): the (T, B, H) outputs and the final (h, c)."""
    steps, batch = x.shape[:2]
    flat = ops.reshape(x, (steps * batch, x.shape[2]))
    if mode == "GRU":
        b_hh = b_hh if b_hh is not None else zeros(w_hh.shape[0], dtype=w_hh.dtype, xp=get_array_module(w_hh.array))
        gx = ops.reshape(F.linear(flat, w_ih, b_ih), (steps, batch, -1))
        seq = gru_sequence(gx, h0, w_hh, b_hh, reverse, batch_sizes)
    else:
        bias = None if b_ih is None else b_ih + b_hh  # both biases enter the gates the same way: add them once
        gx = ops.reshape(F.linear(flat, w_ih, bias), (steps, batch, -1))
        if mode == "LSTM":
            seq = lstm_sequence(gx, h0, c0, w_hh, reverse, batch_sizes)
        else:
            seq = rnn_sequence(gx, h0, w_hh, "tanh" if mode == "RNN_TANH" else "relu", reverse, batch_sizes)
    return seq[:steps], seq[steps], (seq[steps + 1] if mode == "LSTM" else None)


class RNNBase(Module):
    """What RNN, LSTM and GRU share: the parameter layout, the checks, the loop over layers and directions."""

    mode = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError(f"{type(self).__name__}: proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"{type(self).__name__}: hidden_size and num_layers must be positive, got "
                             f"{hidden_size} and {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        directions = 2 if bidirectional else 1
        gates = _GATES[self.mode] * hidden_size
        dtype = dtype or default_float
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(empty(gates, layer_input, dtype=dtype)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(empty(gates, hidden_size, dtype=dtype)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(empty(gates, dtype=dtype)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(empty(gates, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)  # PyTorch's init: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self):
        """Does nothing: kept so that PyTorch code calling it runs unchanged."""

    def _name(self):
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers})"

    def _check_state(self, state, batch, what):
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        if tuple(state.shape) != expected:
            raise ValueError(f"{self._name()}: {what} should have shape {expected}, got {tuple(state.shape)}")

    def forward(self, input, hx=None, lengths=None):
        """input (T, B, F), or (B, T, F) with batch_first, or unbatched (T, F); hx as in PyTorch; see the module
        docstring for lengths."""
        name = self._name()
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected a 2-D (unbatched) or 3-D input, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input with {self.input_size} features in its last dim, got shape "
                             f"{tuple(input.shape)}")
        unbatched = input.ndim == 2
        x = ops.unsqueeze(input, 1) if unbatched else (ops.transpose(input, 0, 1) if self.batch_first else input)
        steps, batch = x.shape[:2]
        if steps == 0:
            raise ValueError(f"{name}: input of shape {tuple(input.shape)} has no time steps")
        directions = 2 if self.bidirectional else 1
        states = (self.num_layers * directions, batch, self.hidden_size)
        h0 = c0 = None
        if hx is not None:
            h0, c0 = hx if self.mode == "LSTM" else (hx, None)
            if unbatched:
                h0, c0 = ops.unsqueeze(h0, 1), (None if c0 is None else ops.unsqueeze(c0, 1))
            self._check_state(h0, batch, "h_0")
            if c0 is not None:
                self._check_state(c0, batch, "c_0")
        xp = get_array_module(input.array)  # the initial states live on the input's device
        if h0 is None:
            h0 = zeros(*states, dtype=input.dtype, xp=xp)
        if c0 is None and self.mode == "LSTM":
            c0 = zeros(*states, dtype=input.dtype, xp=xp)
        order, batch_sizes = _batch_sizes(lengths, steps, batch, name)
        if order is not None:  # longest first, so that each step runs on a prefix of the batch
            x, h0 = x[:, order], h0[:, order]
            c0 = None if c0 is None else c0[:, order]
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(("", "_reverse")[:directions]):
                k = layer * directions + direction
                weights = [getattr(self, f"{kind}_l{layer}{suffix}", None)
                           for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                out, h, c = _run_layer(self.mode, x, h0[k], None if c0 is None else c0[k], *weights,
                                       reverse=direction == 1, batch_sizes=batch_sizes)
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outputs[0] if directions == 1 else ops.cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = ops.stack(h_n, 0)
        c_n = ops.stack(c_n, 0) if self.mode == "LSTM" else None
        if order is not None:
            inverse = np.argsort(order)
            x, h_n = x[:, inverse], h_n[:, inverse]
            c_n = None if c_n is None else c_n[:, inverse]
        if unbatched:
            x, h_n = ops.squeeze(x, 1), ops.squeeze(h_n, 1)
            c_n = None if c_n is None else ops.squeeze(c_n, 1)
        elif self.batch_first:
            x = ops.transpose(x, 0, 1)
        return (x, (h_n, c_n)) if self.mode == "LSTM" else (x, h_n)

    def extra_repr(self):
        extra = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            extra += f", num_layers={self.num_layers}"
        for key, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, key) != default:
                extra += f", {key}={getattr(self, key)}"
        return extra


class RNN(RNNBase):
    """Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu; returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o as in PyTorch; returns (output, (h_n, c_n)).

    >>> lstm = lamina.nn.LSTM(3, 5, num_layers=2, batch_first=True)
    >>> output, (h_n, c_n) = lstm(lamina.randn(2, 7, 3), lengths=[7, 4])
    >>> output.shape, h_n.shape, sorted(lstm.state_dict())[:2]
    (lamina.Size([2, 7, 5]), lamina.Size([2, 2, 5]), ['bias_hh_l0', 'bias_hh_l1'])
    """

    mode = "LSTM"


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n as in PyTorch; returns (output, h_n).

    >>> output, h_n = lamina.nn.GRU(3, 4, bidirectional=True)(lamina.randn(6, 2, 3))   # (T, B, F)
    >>> output.shape, h_n.shape
    (lamina.Size([6, 2, 8]), lamina.Size([2, 2, 4]))
    """

    mode = "GRU"


# --- cells: one time step -----------------------------------------------------------------------------------
class RNNCellBase(Module):
    mode = None

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gates = _GATES[self.mode] * hidden_size
        dtype = dtype or default_float
        self.weight_ih = Parameter(empty(gates, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(gates, hidden_size, dtype=dtype))
        self.bias_ih = Parameter(empty(gates, dtype=dtype)) if bias else None
        self.bias_hh = Parameter(empty(gates, dtype=dtype)) if bias else None
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _step(self, input, hx):
        name = f"{type(self).__name__}({self.input_size}, {self.hidden_size})"
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(input.shape)}")
        unbatched = input.ndim == 1
        x = ops.unsqueeze(input, 0) if unbatched else input
        batch = x.shape[0]
        xp = get_array_module(input.array)  # the initial states live on the input's device
        states = [zeros(batch, self.hidden_size, dtype=input.dtype, xp=xp)] * (2 if self.mode == "LSTM" else 1)
        if hx is not None:
            given = list(hx) if self.mode == "LSTM" else [hx]
            for i, state in enumerate(given):
                state = ops.unsqueeze(state, 0) if unbatched else state
                if tuple(state.shape) != (batch, self.hidden_size):
                    raise ValueError(f"{name}: hidden state should have shape {(batch, self.hidden_size)}, got "
                                     f"{tuple(state.shape)}")
                states[i] = state
        h0 = states[0]
        c0 = states[1] if self.mode == "LSTM" else None
        _, h, c = _run_layer(self.mode, ops.unsqueeze(x, 0), h0, c0, self.weight_ih, self.weight_hh, self.bias_ih,
                             self.bias_hh, reverse=False, batch_sizes=None)
        if unbatched:
            h, c = ops.squeeze(h, 0), (None if c is None else ops.squeeze(c, 0))
        return h, c

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]


class LSTMCell(RNNCellBase):
    mode = "LSTM"

    def forward(self, input, hx=None):
        """One step: (h', c') from input and hx = (h, c)."""
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    mode = "GRU"

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]
