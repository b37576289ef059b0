"""Connectionist temporal classification loss: forward-backward in log space, vectorized over the batch.

For each sequence the target l (length S) is spread with blanks into l' = (blank, l_1, blank, ...,
l_S, blank) of length 2S + 1. alpha[t, s] is the log-probability of all alignments of the first t + 1
frames that end in l'_s; beta[t, s] of the alignments of frames t... that start there. The loss is
-log p(l | x) = -logsumexp(alpha[T - 1, 2S], alpha[T - 1, 2S - 1]). Everything stays in log space,
so 1,000-frame inputs neither underflow nor overflow; each recursion runs one time step for the
whole batch and every position s at once.
"""

import numpy as np

from lamina.autograd import Function, is_grad_enabled, wrap
from lamina.backend import get_array_module

_NEG_INF = -np.inf


def _shift(a, k):
    """a shifted right by k positions along the last axis, -inf filling in."""
    out = get_array_module(a).full_like(a, _NEG_INF)
    out[..., k:] = a[..., :a.shape[-1] - k]
    return out


def _shift_left(a, k):
    out = get_array_module(a).full_like(a, _NEG_INF)
    out[..., :a.shape[-1] - k] = a[..., k:]
    return out


class CTCLoss(Function):
    """Per-sequence CTC negative log-likelihood (N,) of log_probs (T, N, C).

    `extended` (N, 2 S_max + 1) holds each l' padded with blanks, `target_lengths` and
    `input_lengths` (N,) the true sizes. Backward is on arrays: first derivatives only.
    """

    def __init__(self, extended, input_lengths, target_lengths, blank, zero_infinity):
        self.extended, self.input_lengths, self.target_lengths = extended, input_lengths, target_lengths
        self.blank, self.zero_infinity = blank, zero_infinity
        skip = extended != blank  # l'_s may be reached from l'_{s-2}: not a blank, not a repeated label
        skip[:, 2:] &= extended[:, 2:] != extended[:, :-2]
        skip[:, :2] = False
        self.skip = skip

    def _emissions(self, log_probs):
        """lp[t, n, l'_s] for every t, n, s: (T, N, L)."""
        xp = get_array_module(log_probs)
        return xp.take_along_axis(log_probs, xp.broadcast_to(self.extended[None], (log_probs.shape[0],
                                                                                   *self.extended.shape)), 2)

    def _to_device_of(self, log_probs):
        """The targets and lengths (made on the host by ctc_loss) on the device of log_probs."""
        xp = get_array_module(log_probs)
        if xp is not np:
            for name in ("extended", "input_lengths", "target_lengths", "skip"):
                setattr(self, name, xp.asarray(getattr(self, name)))
        return xp

    def forward(self, log_probs):
        xp = self._to_device_of(log_probs)
        steps, batch = log_probs.shape[:2]
        emit = self._emissions(log_probs)
        positions = self.extended.shape[1]
        alpha = xp.full((steps, batch, positions), _NEG_INF, dtype=log_probs.dtype)
        alpha[0, :, 0] = emit[0, :, 0]
        if positions > 1:
            alpha[0, :, 1] = np.where(self.target_lengths > 0, emit[0, :, 1], _NEG_INF)
        skip_penalty = xp.where(self.skip, 0, _NEG_INF).astype(log_probs.dtype)
        with np.errstate(invalid="ignore"):  # -inf - -inf inside logaddexp when nothing can reach a position
            for t in range(1, steps):
                prev = alpha[t - 1]
                a = np.logaddexp(prev, _shift(prev, 1))
                a = np.logaddexp(a, _shift(prev, 2) + skip_penalty)
                a += emit[t]
                running = (t < self.input_lengths)[:, None]
                alpha[t] = np.where(running, a, prev)  # a finished sequence keeps its last alpha
        rows = xp.arange(batch)
        last = alpha[self.input_lengths - 1, rows]  # (N, L) at each sequence's last frame
        ends = 2 * self.target_lengths
        end_blank = last[rows, ends]
        end_label = np.where(self.target_lengths > 0, last[rows, np.maximum(ends - 1, 0)], _NEG_INF)
        loss = -np.logaddexp(end_blank, end_label)
        self.alpha, self.emit = alpha, emit
        if self.zero_infinity:
            loss = np.where(np.isinf(loss), 0, loss).astype(log_probs.dtype)
        return loss.astype(log_probs.dtype)

    def release(self):
        super().release()
        self.alpha = self.emit = None

    def backward(self, gy):
        if is_grad_enabled():
            raise RuntimeError("ctc_loss: backward is computed on arrays and is differentiable once only; "
                               "second derivatives (create_graph=True) are not supported")
        log_probs = self.inputs[0].array
        alpha, emit = self.alpha, self.emit
        steps, batch, positions = alpha.shape
        xp = get_array_module(alpha)
        rows = xp.arange(batch)
        skip_from = xp.zeros_like(self.skip)  # l'_{s+2} may be reached from l'_s
        skip_from[:, :-2] = self.skip[:, 2:]
        skip_penalty = xp.where(skip_from, 0, _NEG_INF).astype(alpha.dtype)
        beta = xp.full_like(alpha, _NEG_INF)
        start = xp.full((batch, positions), _NEG_INF, dtype=alpha.dtype)  # beta at each sequence's last frame
        ends = 2 * self.target_lengths
        with np.errstate(invalid="ignore"):
            for t in range(steps - 1, -1, -1):
                start[:] = _NEG_INF
                start[rows, ends] = emit[t, rows, ends]
                has_label = self.target_lengths > 0
                start[rows[has_label], ends[has_label] - 1] = emit[t, rows[has_label], ends[has_label] - 1]
                if t + 1 < steps:
                    nxt = beta[t + 1]
                    b = np.logaddexp(nxt, _shift_left(nxt, 1))
                    b = np.logaddexp(b, _shift_left(nxt, 2) + skip_penalty)
                    b += emit[t]
                else:
                    b = start
                last = (t == self.input_lengths - 1)[:, None]
                inside = (t < self.input_lengths - 1)[:, None]
                beta[t] = np.where(last, start, np.where(inside, b, _NEG_INF))
            loss = -np.logaddexp(alpha[self.input_lengths - 1, rows, ends],
                                 np.where(self.target_lengths > 0,
                                          alpha[self.input_lengths - 1, rows, np.maximum(ends - 1, 0)], _NEG_INF))
            # the posterior of passing through l'_s at frame t, in [0, 1]: alpha beta / (p(l|x) y_t(l'_s))
            occupancy = np.exp(alpha + beta - emit + loss[None, :, None])
        occupancy = np.nan_to_num(occupancy, nan=0.0) if self.zero_infinity else occupancy
        onehot = xp.zeros((batch, positions, log_probs.shape[2]), dtype=alpha.dtype)
        onehot[rows[:, None], xp.arange(positions)[None], self.extended] = 1
        # d(-log p)/d lp[t, n, c] = -sum over the positions s with l'_s = c of the occupancy
        grad = -np.matmul(occupancy.transpose(1, 0, 2), onehot).transpose(1, 0, 2)
        if self.zero_infinity:
            grad[:, np.isinf(loss)] = 0
        return wrap((grad * gy.array[None, :, None]).astype(log_probs.dtype, copy=False))
