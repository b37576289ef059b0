"""Whole-sequence recurrent kernels: one op runs one layer in one direction over every time step.

The input projection of all time steps (x @ W_ih^T + b) is one matrix product made by
the caller; these ops take its result `gx` (T, B, G) and run the recurrence on raw
arrays: per step, one product for all the gates and the cell's elementwise update (one
tanh activates every LSTM gate), with no graph nodes. Their backward runs
backpropagation through time on arrays too, so a 100-step sequence costs one node in
the graph, not a thousand.

Each op returns one tensor that stacks, along time, the T outputs and then the final
state: (T + 1, B, H) for RNN and GRU ([h_1 ... h_T, h_n]) and (T + 2, B, H) for LSTM
([h_1 ... h_T, h_n, c_n]); callers slice it. With `batch_sizes` (non-increasing, one per
time step, as in a packed sequence) only the first batch_sizes[t] rows take step t: the
rest keep their state and output zeros, so padding never reaches the final state. The
rows must therefore be sorted by length, longest first. `reverse` runs from t = T - 1
down to 0.

Differentiability: the first-order backward is written on arrays. When a gradient is
asked for with create_graph=True, backward instead rebuilds the step-by-step reference
twin (`*_reference`, written in lamina ops) and differentiates that, so second
derivatives are exact too, at the reference's speed.
"""

from lamina import kernels
from lamina.autograd import Function, is_grad_enabled, wrap
from lamina.backend import get_array_module
from lamina.ops.elementwise import relu, sigmoid, tanh
from lamina.ops.linalg import matmul
from lamina.ops.nn import differentiate_reference
from lamina.ops.shape import cat, stack, transpose


def _steps(length, reverse):
    return range(length - 1, -1, -1) if reverse else range(length)


def _sizes(batch_sizes, length, batch):
    return [batch] * length if batch_sizes is None else list(batch_sizes)


def _sigmoid_(a):
    """Logistic sigmoid in place, as 0.5 * tanh(a / 2) + 0.5: one transcendental pass, no overflow."""
    a *= 0.5
    get_array_module(a).tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


class _Sequence(Function):
    """What the sequence ops share: how they run, and what they keep for backward (in `kept`)."""

    def __init__(self, reverse=False, batch_sizes=None):
        self.reverse, self.batch_sizes = reverse, batch_sizes

    def release(self):
        super().release()
        self.kept = None  # the per-step activations: the bulk of a recurrent graph's memory


# --- LSTM -----------------------------------------------------------------------------------------------------
class LSTMSequence(_Sequence):
    """LSTM over a whole sequence. Inputs: gx (T, B, 4H) = x W_ih^T + b_ih + b_hh, h0, c0 (B, H), w_hh (4H, H).

    Gates in PyTorch's order i, f, g, o: c' = f c + i g, h' = o tanh(c'). Per step: one product, then the
    cell's elementwise work in one kernel call (kernels.lstm_cells: forward, backward).
    """

    def forward(self, gx, h0, c0, w_hh):
        xp = get_array_module(gx)
        steps, batch, gates = gx.shape
        hidden = gates // 4
        sizes = _sizes(self.batch_sizes, steps, batch)
        new = xp.empty if self.batch_sizes is None else xp.zeros  # every element gets written, or not
        out = new((steps + 2, batch, hidden), dtype=gx.dtype)
        acts = new((steps, batch, gates), dtype=gx.dtype)  # activated gates, kept for backward
        h_prev = xp.empty((steps, batch, hidden), dtype=gx.dtype)  # the state each step started from
        c_prev = xp.empty((steps, batch, hidden), dtype=gx.dtype)
        tanh_c = new((steps, batch, hidden), dtype=gx.dtype)
        h, c = h0.astype(gx.dtype), c0.astype(gx.dtype)  # copies: the state, changed at each step
        w_t = xp.ascontiguousarray(w_hh.T)  # BLAS ran h @ w_hh.T read transposed 20% slower on (64, 128) states
        cell = kernels.lstm_cells(gx)[0]
        for t in _steps(steps, self.reverse):
            n = sizes[t]
            h_prev[t], c_prev[t] = h, c
            xp.matmul(h[:n], w_t, out=acts[t, :n])
            cell(acts[t, :n], gx[t, :n], c[:n], tanh_c[t, :n], out[t, :n])  # c updated in place
            h[:n] = out[t, :n]
        out[steps], out[steps + 1] = h, c
        self.kept = acts, h_prev, c_prev, tanh_c
        return out

    def backward(self, gy):
        if is_grad_enabled():
            return differentiate_reference(self, lambda *a: lstm_reference(*a, self.reverse, self.batch_sizes), gy)
        gy = gy.array
        xp = get_array_module(gy)
        acts, h_prev, c_prev, tanh_c = self.kept
        w_hh = self.inputs[3].array
        steps, batch, gates = acts.shape
        hidden = gates // 4
        sizes = _sizes(self.batch_sizes, steps, batch)
        dgates = xp.empty_like(acts) if self.batch_sizes is None else xp.zeros_like(acts)
        dh, dc = gy[steps].copy(), gy[steps + 1].copy()
        cell_backward = kernels.lstm_cells(acts)[1]
        for t in reversed(_steps(steps, self.reverse)):
            n = sizes[t]
            d, dh_t = dgates[t, :n], dh[:n]
            dh_t += gy[t, :n]
            cell_backward(dh_t, dc[:n], acts[t, :n], c_prev[t, :n], tanh_c[t, :n], d)
            xp.matmul(d, w_hh, out=dh_t)
        need_gx, need_h0, need_c0, need_w = self.needs_input_grad
        dw = None
        if need_w:  # one product over every step, not one per step
            rows = steps * batch
            dw = wrap(dgates.reshape(rows, gates).T @ h_prev.reshape(rows, hidden))
        return (wrap(dgates) if need_gx else None, wrap(dh) if need_h0 else None, wrap(dc) if need_c0 else None,
                dw)


def lstm_sequence(gx, h0, c0, w_hh, reverse=False, batch_sizes=None):
    """The (T + 2, B, H) stack [h_1 ... h_T, h_n, c_n] of an LSTM layer; see the module docstring."""
    return LSTMSequence(reverse, batch_sizes)(gx, h0, c0, w_hh)


def _keep(new, old, n):
    """The state after a step that only the first n rows took."""
    return new if n == old.shape[0] else cat([new, old[n:]], 0)


def _padded(h, batch):
    """A step's output for the whole batch: rows that did not take the step output zeros."""
    n = h.shape[0]
    if n == batch:
        return h
    return cat([h, wrap(get_array_module(h.array).zeros((batch - n, *h.shape[1:]), dtype=h.dtype))], 0)


def lstm_reference(gx, h0, c0, w_hh, reverse=False, batch_sizes=None):
    """LSTMSequence step by step in lamina ops: the readable twin, and the second-order path."""
    steps, batch, _ = gx.shape
    hidden = h0.shape[-1]
    sizes = _sizes(batch_sizes, steps, batch)
    w_t = transpose(w_hh, 0, 1)
    h, c, outputs = h0, c0, [None] * steps
    for t in _steps(steps, reverse):
        n = sizes[t]
        a = gx[t, :n] + matmul(h[:n], w_t)
        i, f = sigmoid(a[:, :hidden]), sigmoid(a[:, hidden:2 * hidden])
        g, o = tanh(a[:, 2 * hidden:3 * hidden]), sigmoid(a[:, 3 * hidden:])
        c_new = f * c[:n] + i * g
        h_new = o * tanh(c_new)
        outputs[t] = _padded(h_new, batch)
        h, c = _keep(h_new, h, n), _keep(c_new, c, n)
    return stack([*outputs, h, c], 0)


# --- GRU ------------------------------------------------------------------------------------------------------
class GRUSequence(_Sequence):
    """GRU over a whole sequence. Inputs: gx (T, B, 3H) = x W_ih^T + b_ih, h0 (B, H), w_hh (3H, H), b_hh (3H,).

    Gates in PyTorch's order r, z, n: n = tanh(gx_n + r (W_hn h + b_hn)), h' = (1 - z) n + z h.
    """

    def forward(self, gx, h0, w_hh, b_hh):
        xp = get_array_module(gx)
        steps, batch, gates = gx.shape
        hidden = gates // 3
        sizes = _sizes(self.batch_sizes, steps, batch)
        out = xp.zeros((steps + 1, batch, hidden), dtype=gx.dtype)
        acts = xp.zeros((steps, batch, gates), dtype=gx.dtype)  # r, z, n after their activations
        gh_n = xp.zeros((steps, batch, hidden), dtype=gx.dtype)  # W_hn h + b_hn, which r multiplies
        h_prev = xp.empty((steps, batch, hidden), dtype=gx.dtype)
        h = h0.copy()
        w_t = w_hh.T
        for t in _steps(steps, self.reverse):
            n = sizes[t]
            h_prev[t] = h
            gh = h[:n] @ w_t
            gh += b_hh
            a = acts[t, :n]
            xp.add(gx[t, :n, :2 * hidden], gh[:, :2 * hidden], out=a[:, :2 * hidden])
            _sigmoid_(a[:, :2 * hidden])
            r, z, cand = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:]
            gh_n[t, :n] = gh[:, 2 * hidden:]
            xp.multiply(r, gh[:, 2 * hidden:], out=cand)
            cand += gx[t, :n, 2 * hidden:]
            xp.tanh(cand, out=cand)
            h_new = out[t, :n]
            xp.subtract(h[:n], cand, out=h_new)
            h_new *= z
            h_new += cand  # (1 - z) n + z h = n + z (h - n)
            h[:n] = h_new
        out[steps] = h
        self.kept = acts, gh_n, h_prev
        return out

    def backward(self, gy):
        if is_grad_enabled():
            return differentiate_reference(self, lambda *a: gru_reference(*a, self.reverse, self.batch_sizes), gy)
        gy = gy.array
        xp = get_array_module(gy)
        acts, gh_n, h_prev = self.kept
        w_hh = self.inputs[2].array
        steps, batch, gates = acts.shape
        hidden = gates // 3
        sizes = _sizes(self.batch_sizes, steps, batch)
        dgx = xp.zeros_like(acts)
        dgh = xp.zeros_like(acts)
        dh = gy[steps].copy()
        for t in reversed(_steps(steps, self.reverse)):
            n = sizes[t]
            a = acts[t, :n]
            r, z, cand = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:]
            dh_t = dh[:n]
            dh_t += gy[t, :n]
            d, dg = dgx[t, :n], dgh[t, :n]
            dn = d[:, 2 * hidden:]
            xp.multiply(dh_t, 1 - z, out=dn)
            dn *= 1 - cand * cand  # through the tanh
            xp.multiply(dh_t, h_prev[t, :n] - cand, out=d[:, hidden:2 * hidden])
            xp.multiply(dn, gh_n[t, :n], out=d[:, :hidden])
            d[:, :2 * hidden] *= a[:, :2 * hidden] * (1 - a[:, :2 * hidden])
            dg[:, :2 * hidden] = d[:, :2 * hidden]
            xp.multiply(dn, r, out=dg[:, 2 * hidden:])
            dh_t *= z
            dh_t += dg @ w_hh
        need_gx, need_h0, need_w, need_b = self.needs_input_grad
        rows = steps * batch
        dw = wrap(dgh.reshape(rows, gates).T @ h_prev.reshape(rows, hidden)) if need_w else None
        db = wrap(dgh.reshape(rows, gates).sum(0)) if need_b else None
        return wrap(dgx) if need_gx else None, wrap(dh) if need_h0 else None, dw, db


def gru_sequence(gx, h0, w_hh, b_hh, reverse=False, batch_sizes=None):
    """The (T + 1, B, H) stack [h_1 ... h_T, h_n] of a GRU layer; see the module docstring."""
    return GRUSequence(reverse, batch_sizes)(gx, h0, w_hh, b_hh)


def gru_reference(gx, h0, w_hh, b_hh, reverse=False, batch_sizes=None):
    """GRUSequence step by step in lamina ops: the readable twin, and the second-order path."""
    steps, batch, _ = gx.shape
    hidden = h0.shape[-1]
    sizes = _sizes(batch_sizes, steps, batch)
    w_t = transpose(w_hh, 0, 1)
    h, outputs = h0, [None] * steps
    for t in _steps(steps, reverse):
        n = sizes[t]
        gh = matmul(h[:n], w_t) + b_hh
        x = gx[t, :n]
        r = sigmoid(x[:, :hidden] + gh[:, :hidden])
        z = sigmoid(x[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        cand = tanh(x[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h_new = (1 - z) * cand + z * h[:n]
        outputs[t] = _padded(h_new, batch)
        h = _keep(h_new, h, n)
    return stack([*outputs, h], 0)


# --- Elman RNN ------------------------------------------------------------------------------------------------
class RNNSequence(_Sequence):
    """Elman RNN over a whole sequence: h' = act(gx_t + h W_hh^T), gx = x W_ih^T + b_ih + b_hh; act tanh or relu."""

    def __init__(self, nonlinearity="tanh", reverse=False, batch_sizes=None):
        self.nonlinearity, self.reverse, self.batch_sizes = nonlinearity, reverse, batch_sizes

    def forward(self, gx, h0, w_hh):
        xp = get_array_module(gx)
        steps, batch, hidden = gx.shape
        sizes = _sizes(self.batch_sizes, steps, batch)
        out = xp.zeros((steps + 1, batch, hidden), dtype=gx.dtype)
        h_prev = xp.empty((steps, batch, hidden), dtype=gx.dtype)
        h = h0.copy()
        w_t = w_hh.T
        for t in _steps(steps, self.reverse):
            n = sizes[t]
            h_prev[t] = h
            h_new = out[t, :n]
            xp.matmul(h[:n], w_t, out=h_new)
            h_new += gx[t, :n]
            if self.nonlinearity == "tanh":
                xp.tanh(h_new, out=h_new)
            else:
                xp.maximum(h_new, 0, out=h_new)
            h[:n] = h_new
        out[steps] = h
        self.kept = h_prev, out
        return out

    def backward(self, gy):
        if is_grad_enabled():
            reference = lambda *a: rnn_reference(*a, self.nonlinearity, self.reverse, self.batch_sizes)  # noqa: E731
            return differentiate_reference(self, reference, gy)
        gy = gy.array
        xp = get_array_module(gy)
        h_prev, y = self.kept
        w_hh = self.inputs[2].array
        steps, batch, hidden = h_prev.shape
        sizes = _sizes(self.batch_sizes, steps, batch)
        dpre = xp.zeros_like(h_prev)
        dh = gy[steps].copy()
        for t in reversed(_steps(steps, self.reverse)):
            n = sizes[t]
            dh_t = dh[:n]
            dh_t += gy[t, :n]
            d = dpre[t, :n]
            h = y[t, :n]
            if self.nonlinearity == "tanh":
                xp.multiply(dh_t, 1 - h * h, out=d)
            else:
                xp.multiply(dh_t, h > 0, out=d)
            xp.matmul(d, w_hh, out=dh_t)
        need_gx, need_h0, need_w = self.needs_input_grad
        rows = steps * batch
        dw = wrap(dpre.reshape(rows, hidden).T @ h_prev.reshape(rows, hidden)) if need_w else None
        return wrap(dpre) if need_gx else None, wrap(dh) if need_h0 else None, dw


def rnn_sequence(gx, h0, w_hh, nonlinearity="tanh", reverse=False, batch_sizes=None):
    """The (T + 1, B, H) stack [h_1 ... h_T, h_n] of an Elman RNN layer; see the module docstring."""
    return RNNSequence(nonlinearity, reverse, batch_sizes)(gx, h0, w_hh)


def rnn_reference(gx, h0, w_hh, nonlinearity="tanh", reverse=False, batch_sizes=None):
    """RNNSequence step by step in lamina ops: the readable twin, and the second-order path."""
    steps, batch, _ = gx.shape
    sizes = _sizes(batch_sizes, steps, batch)
    act = tanh if nonlinearity == "tanh" else relu
    w_t = transpose(w_hh, 0, 1)
    h, outputs = h0, [None] * steps
    for t in _steps(steps, reverse):
        n = sizes[t]
        h_new = act(gx[t, :n] + matmul(h[:n], w_t))
        outputs[t] = _padded(h_new, batch)
        h = _keep(h_new, h, n)
    return stack([*outputs, h], 0)
