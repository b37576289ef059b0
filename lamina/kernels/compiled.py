"""The Numba versions of lamina's kernels: one fused pass each, parallel over images or elements.

Imported only when a kernel first runs on the numba path, so `import lamina` never imports Numba. Each
function is compiled on its first call with its argument types and kept in Numba's on-disk cache (cache=True),
so later processes load it instead of compiling. fastmath stays off: results follow IEEE rules as NumPy's do.
The reference twins are in lamina/kernels/reference.py; the tests hold these to them.
"""

import functools
import os
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from lamina import backend

# Numba's own thread pool ("workqueue"; TBB's where installed) rather than OpenMP: PyTorch brings its own
# OpenMP runtime, and with two in one process PyTorch ran 10 times slower after the first lamina kernel
# (bench W3 at one thread: 0.42 s of CPU with workqueue, 6.3 s with omp). The workqueue pool must not be
# entered by two threads at once, so every kernel holds `_launch` while it runs.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]
_launch = threading.Lock()
compiled = njit(parallel=True, fastmath=False, error_model="numpy", cache=True)
# The serial helpers divide as NumPy does (x / 0 is inf or NaN, as in the references), not as Python (an error).
serial = njit(error_model="numpy", cache=True)


# --- windows over channels-last images -----------------------------------------------------------------------
@compiled
def im2col(v, out_h, out_w, kh, kw, sh, sw, dh, dw, top, left, ones, cols):
    """cols (N, Ho, Wo, kh * kw * C [+ 1]) <- the windows of v (N, H, W, C), channels-last, zeros in the
    padding, and a last column of ones when `ones`."""
    n, h, w, c = v.shape
    for row in prange(n * out_h):
        b, i = row // out_h, row % out_h
        for j in range(out_w):
            for ki in range(kh):
                r = i * sh - top + ki * dh
                for kj in range(kw):
                    s = j * sw - left + kj * dw
                    first = (ki * kw + kj) * c
                    if 0 <= r < h and 0 <= s < w:
                        for ch in range(c):
                            cols[b, i, j, first + ch] = v[b, r, s, ch]
                    else:
                        for ch in range(c):
                            cols[b, i, j, first + ch] = 0
            if ones:
                cols[b, i, j, kh * kw * c] = 1


@compiled
def col2im(cols, sh, sw, dh, dw, top, left, out):
    """out (N, H, W, C) <- the sum of the window values cols (N, Ho, Wo, kh, kw, C) over where each was read;
    one image per thread, so no two threads add into the same element."""
    n, out_h, out_w, kh, kw, c = cols.shape
    h, w = out.shape[1], out.shape[2]
    for b in prange(n):
        out[b] = 0
        for i in range(out_h):
            for j in range(out_w):
                for ki in range(kh):
                    r = i * sh - top + ki * dh
                    if r < 0 or r >= h:
                        continue
                    for kj in range(kw):
                        s = j * sw - left + kj * dw
                        if 0 <= s < w:
                            for ch in range(c):
                                out[b, r, s, ch] += cols[b, i, j, ki, kj, ch]


@compiled
def max_pool(v, kh, kw, sh, sw, dh, dw, top, left, relu, best, index):
    """best, index (N, Ho, Wo, C) <- each window's maximum of v (N, H, W, C) and its kernel position; NaN
    propagates to best as np.maximum does, and the index stays where the reference leaves it."""
    n, h, w, c = v.shape
    out_h, out_w = best.shape[1], best.shape[2]
    for row in prange(n * out_h):
        b, i = row // out_h, row % out_h
        for j in range(out_w):
            for ch in range(c):
                best[b, i, j, ch] = -np.inf
                index[b, i, j, ch] = 0
            for ki in range(kh):
                r = i * sh - top + ki * dh
                for kj in range(kw):
                    s = j * sw - left + kj * dw
                    if r < 0 or r >= h or s < 0 or s >= w:
                        continue  # padding reads as -inf: never strictly larger
                    k = ki * kw + kj
                    for ch in range(c):  # selects, not branches: this loop vectorizes (W2's first pool -18%)
                        x, held = v[b, r, s, ch], best[b, i, j, ch]
                        larger = x > held
                        best[b, i, j, ch] = x if larger or x != x else held
                        index[b, i, j, ch] = k if larger else index[b, i, j, ch]
            if relu:
                for ch in range(c):
                    if best[b, i, j, ch] < 0:
                        best[b, i, j, ch] = 0


@compiled
def max_pool_scatter(gy, index, kh, kw, sh, sw, dh, dw, top, left, tiles, disjoint, out):
    """out (N, H, W, C) <- gy (N, Ho, Wo, C) added at each window's maximum; one image per thread. When no two
    windows share an element (disjoint), each window's elements are written, not added (the kernel position
    is then a comparison, not a division per element); when they also tile the input, every element is
    written once and never zeroed."""
    n, out_h, out_w, c = gy.shape
    h, w = out.shape[1], out.shape[2]
    for b in prange(n):
        if not tiles:
            out[b] = 0
        for i in range(out_h):
            for j in range(out_w):
                if disjoint:
                    for ki in range(kh):
                        r = i * sh - top + ki * dh
                        for kj in range(kw):
                            s = j * sw - left + kj * dw
                            if 0 <= r < h and 0 <= s < w:
                                k = ki * kw + kj
                                for ch in range(c):
                                    out[b, r, s, ch] = gy[b, i, j, ch] if index[b, i, j, ch] == k else 0
                    continue
                for ch in range(c):
                    k = index[b, i, j, ch]
                    r = i * sh - top + (k // kw) * dh
                    s = j * sw - left + (k % kw) * dw
                    if 0 <= r < h and 0 <= s < w:
                        out[b, r, s, ch] += gy[b, i, j, ch]


# --- optimizer steps over flat (1-D) views of a parameter and its state ------------------------------------------
@compiled
def adam_step(param, grad, m, v, v_max, amsgrad, lr, one_minus_beta1, beta2, one_minus_beta2, eps,
              bias_correction2_sqrt, step_size, weight_decay, decay_factor, decoupled):
    """Adam / AdamW in one pass, with the reference's operation order (scalars come in param's dtype)."""
    for k in prange(param.size):
        p = param[k]
        g = grad[k]
        if decoupled:
            p = p * decay_factor
        elif weight_decay != 0:
            g = g + weight_decay * p
        m_k = m[k] + (g - m[k]) * one_minus_beta1
        v_k = v[k] * beta2 + (g * g) * one_minus_beta2
        m[k] = m_k
        v[k] = v_k
        if amsgrad:
            if v_k > v_max[k] or v_k != v_k:
                v_max[k] = v_k
            v_k = v_max[k]
        denominator = np.sqrt(v_k) / bias_correction2_sqrt + eps
        param[k] = p - (m_k / denominator) * step_size


@compiled
def sgd_step(param, grad, buf, has_buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, first):
    """SGD with optional momentum, Nesterov and weight decay, in one pass."""
    for k in prange(param.size):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * param[k]
        if has_buf:
            b = g if first else buf[k] * momentum + one_minus_dampening * g
            buf[k] = b
            g = g + momentum * b if nesterov else b
        param[k] = param[k] - lr * g


# --- LayerNorm over the rows of a (rows, n) array -----------------------------------------------------------------
# A row's sums may add in any order (fastmath's "reassoc" flag alone, no other fast-math assumption: NaN, inf and
# signed zeros behave as IEEE says), so they run in SIMD lanes, as NumPy's own sums do; in strict order they are
# one chain of dependent additions, six times slower on rows of 64. They accumulate in float64.
@njit(fastmath={"reassoc"}, error_model="numpy", cache=True)
def _row_sum(a):
    total = 0.0
    for j in range(a.size):
        total += a[j]
    return total


@njit(fastmath={"reassoc"}, error_model="numpy", cache=True)
def _row_dot(a, b):
    """sum of a * b, each product exact in float64 for float32 inputs."""
    total = 0.0
    for j in range(a.size):
        total += np.float64(a[j]) * b[j]
    return total


# Threads take blocks of rows, each block a call of a serial function: inlined into the parallel loop, the row
# loops compiled 50% slower (the loop body is outlined, and the arrays' independence is lost with it). At one
# thread the serial function runs alone, without a parallel launch (whose wait spins when the machine is busy).
@serial
def _layer_norm_rows(x, weight, bias, affine, eps, y, mean, rstd, start, stop):
    n = x.shape[1]
    for r in range(start, stop):
        row, out = x[r], y[r]
        mean[r] = _row_sum(row) / n
        mu = mean[r]  # in x's dtype, as the backward pass reads it
        for j in range(n):
            out[j] = row[j] - mu
        rstd[r] = 1 / np.sqrt(_row_dot(out, out) / n + eps)
        s = rstd[r]
        if affine:
            for j in range(n):
                out[j] = out[j] * s * weight[j] + bias[j]
        else:
            for j in range(n):
                out[j] *= s


@compiled
def _layer_norm_blocks(x, weight, bias, affine, eps, blocks, y, mean, rstd):
    rows = x.shape[0]
    for block in prange(blocks):
        _layer_norm_rows(x, weight, bias, affine, eps, y, mean, rstd, block * rows // blocks,
                         (block + 1) * rows // blocks)


def layer_norm(x, weight, bias, affine, eps, blocks, y, mean, rstd):
    """y, mean, rstd <- reference.layer_norm(x, ...), each row read twice from cache."""
    if not _parallel(x.size):
        return _layer_norm_rows(x, weight, bias, affine, eps, y, mean, rstd, 0, x.shape[0])
    with _launch:
        _layer_norm_blocks(x, weight, bias, affine, eps, blocks, y, mean, rstd)


@serial
def _layer_norm_backward_rows(g, x, weight, affine, mean, rstd, gx, gw, gb, start, stop):
    n = g.shape[1]
    gw[:] = 0
    gb[:] = 0
    coefficients = np.empty(2, g.dtype)  # a row's two sums in g's dtype: float64 ones would widen the last loop
    for r in range(start, stop):
        mu, s, g_row, x_row, out = mean[r], rstd[r], g[r], x[r], gx[r]
        for j in range(n):
            gw[j] += g_row[j] * ((x_row[j] - mu) * s)
            gb[j] += g_row[j]
        if affine:
            for j in range(n):
                out[j] = g_row[j] * weight[j]
        else:
            out[:] = g_row
        total = _row_sum(out)
        # the sum of out * xhat, xhat = (x - mu) s, from sums of out * x and out: exact products, float64 sums
        with_xhat = (_row_dot(out, x_row) - mu * total) * s
        coefficients[0], coefficients[1] = total / n, with_xhat / n
        a, b = coefficients[0], coefficients[1]
        for j in range(n):
            out[j] = s * (out[j] - a - (x_row[j] - mu) * s * b)


@compiled
def layer_norm_backward(g, x, weight, affine, mean, rstd, gx, gweight_parts, gbias_parts):
    """gx <- reference.layer_norm_backward's gx; gweight_parts, gbias_parts (blocks, n) <- each block of rows'
    share of gweight and gbias (summed by the caller), so no two threads add into one element (made serial or
    parallel by _twins, below)."""
    rows, blocks = g.shape[0], gweight_parts.shape[0]
    for block in prange(blocks):
        _layer_norm_backward_rows(g, x, weight, affine, mean, rstd, gx, gweight_parts[block], gbias_parts[block],
                                  block * rows // blocks, (block + 1) * rows // blocks)


# --- attention's softmax over the keys of transposed scores (B, H, S, L), in place -------------------------------
# The exponential stays with NumPy (SIMD; Numba's is a scalar call per element, five times slower), so the
# forward is two passes here around np.exp: scale, bias and the maximum before, the sum after. Every reduction
# runs down the columns (one query each), over whole rows at a time, which the compiler vectorizes.
@serial
def _shift_columns(scores, scale, bias, has_bias, start, stop):
    """Matrices start..stop (of the B H) of scores (B, H, S, L) <- scores * scale + bias, less each column's
    maximum. bias is 4-D and C-contiguous, each of its first three dims either full or 1 (broadcast)."""
    heads, keys = scores.shape[1], scores.shape[2]
    top = np.empty(scores.shape[3], scores.dtype)
    for m in range(start, stop):
        b, h = m // heads, m % heads
        weights, add = scores[b, h], bias[b % bias.shape[0], h % bias.shape[1]]
        top[:] = -np.inf
        for j in range(keys):
            row, add_row = weights[j], add[j % add.shape[0]]
            if has_bias:
                for i in range(row.size):
                    row[i] = row[i] * scale + add_row[i]
            else:
                for i in range(row.size):
                    row[i] *= scale
            for i in range(row.size):
                top[i] = row[i] if row[i] > top[i] else top[i]  # a NaN stays NaN through row - top below
        for j in range(keys):
            row = weights[j]
            for i in range(row.size):
                row[i] -= top[i]  # a query with every key at -inf (nothing to attend) becomes NaN


@serial
def _normalize_columns(scores, start, stop):
    heads, keys = scores.shape[1], scores.shape[2]
    inverse = np.empty(scores.shape[3], scores.dtype)
    for m in range(start, stop):
        weights = scores[m // heads, m % heads]
        inverse[:] = 0
        for j in range(keys):
            row = weights[j]
            for i in range(row.size):
                inverse[i] += row[i]
        for i in range(inverse.size):
            inverse[i] = 1 / inverse[i]
        for j in range(keys):
            row = weights[j]
            for i in range(row.size):
                row[i] *= inverse[i]


@serial
def _softmax_backward_columns(grad, weights, scale, start, stop):
    heads, keys = grad.shape[1], grad.shape[2]
    inner = np.empty(grad.shape[3], grad.dtype)
    for m in range(start, stop):
        g, w = grad[m // heads, m % heads], weights[m // heads, m % heads]
        inner[:] = 0
        for j in range(keys):
            g_row, w_row = g[j], w[j]
            for i in range(inner.size):
                inner[i] += g_row[i] * w_row[i]
        for j in range(keys):
            g_row, w_row = g[j], w[j]
            for i in range(inner.size):
                g_row[i] = w_row[i] * (g_row[i] - inner[i]) * scale


@compiled
def _shift_blocks(scores, scale, bias, has_bias, blocks):
    matrices = scores.shape[0] * scores.shape[1]
    for block in prange(blocks):
        _shift_columns(scores, scale, bias, has_bias, block * matrices // blocks, (block + 1) * matrices // blocks)


@compiled
def _normalize_blocks(scores, blocks):
    matrices = scores.shape[0] * scores.shape[1]
    for block in prange(blocks):
        _normalize_columns(scores, block * matrices // blocks, (block + 1) * matrices // blocks)


@compiled
def _softmax_backward_blocks(grad, weights, scale, blocks):
    matrices = grad.shape[0] * grad.shape[1]
    for block in prange(blocks):
        _softmax_backward_columns(grad, weights, scale, block * matrices // blocks, (block + 1) * matrices // blocks)


def attention_softmax_(scores_t, scale, bias_t, has_bias, blocks):
    """scores_t (B, H, S, L) <- reference.attention_softmax_(...); bias_t as _shift_columns takes it."""
    if not _parallel(scores_t.size):
        matrices = scores_t.shape[0] * scores_t.shape[1]
        _shift_columns(scores_t, scale, bias_t, has_bias, 0, matrices)
        np.exp(scores_t, out=scores_t)
        return _normalize_columns(scores_t, 0, matrices)
    with _launch:
        _shift_blocks(scores_t, scale, bias_t, has_bias, blocks)
    np.exp(scores_t, out=scores_t)
    with _launch:
        _normalize_blocks(scores_t, blocks)


def attention_softmax_backward_(grad_t, weights_t, scale, blocks):
    """grad_t (B, H, S, L) <- reference.attention_softmax_backward_(grad_t, weights_t, scale)."""
    if not _parallel(grad_t.size):
        return _softmax_backward_columns(grad_t, weights_t, scale, 0, grad_t.shape[0] * grad_t.shape[1])
    with _launch:
        _softmax_backward_blocks(grad_t, weights_t, scale, blocks)


# --- ReLU's backward, from its output ------------------------------------------------------------------------------
@serial
def _relu_backward_rows(g, y, out, start, stop):
    for r in range(start, stop):
        gr, yr, o = g[r], y[r], out[r]
        for j in range(o.size):
            o[j] = gr[j] if yr[j] > 0 else 0


@compiled
def _relu_backward_blocks(g, y, out, blocks):
    rows = g.shape[0]
    for block in prange(blocks):
        _relu_backward_rows(g, y, out, block * rows // blocks, (block + 1) * rows // blocks)


def relu_backward(g, y, out, blocks):
    """out (rows, n) <- reference.relu_backward(g, y), in one pass."""
    if not _parallel(g.size):
        return _relu_backward_rows(g, y, out, 0, g.shape[0])
    with _launch:
        _relu_backward_blocks(g, y, out, blocks)


@serial
def _bias_relu_rows(y, bias, start, stop):
    for r in range(start, stop):
        row = y[r]
        for j in range(row.size):
            v = row[j] + bias[j]
            row[j] = 0 if v <= 0 else v  # NaN stays NaN, as np.maximum keeps it


@compiled
def _bias_relu_blocks(y, bias, blocks):
    rows = y.shape[0]
    for block in prange(blocks):
        _bias_relu_rows(y, bias, block * rows // blocks, (block + 1) * rows // blocks)


def bias_relu_(y, bias, blocks):
    """y (rows, n) <- reference.bias_relu_(y, bias), in one pass."""
    if not _parallel(y.size):
        return _bias_relu_rows(y, bias, 0, y.shape[0])
    with _launch:
        _bias_relu_blocks(y, bias, blocks)


# --- embedding: rows of a gradient added into the rows of a table that they were looked up from ---------------
@serial
def _scatter_rows(g, indices, out, start, stop):
    """out[indices[n], start:stop] += g[n, start:stop] for every n, in order."""
    for n in range(g.shape[0]):
        row = indices[n]
        for j in range(start, stop):
            out[row, j] += g[n, j]


@compiled
def _scatter_column_blocks(g, indices, out, blocks):
    width = g.shape[1]
    for block in prange(blocks):  # threads take columns, so that no two add into one element
        _scatter_rows(g, indices, out, block * width // blocks, (block + 1) * width // blocks)


def embedding_backward(g, indices, out):
    """out (rows, D), zeroed <- reference.embedding_backward(g, indices, rows)."""
    if not _parallel(g.size) or g.shape[1] < 32:
        return _scatter_rows(g, indices, out, 0, g.shape[1])
    with _launch:
        _scatter_column_blocks(g, indices, out, min(_threads, g.shape[1] // 16))


# --- one LSTM step around its matrix product ---------------------------------------------------------------------
# Serial: a step's work is small (64 x 512 gates in bench W4) and runs twice per time step, where a parallel
# launch would cost more than the work. The two tanh passes stay with NumPy (SIMD; Numba's tanh is a scalar call
# per element, forty times slower); the passes around them are fused here. The loops run over 1-D views of
# each row and gate, which the compiler vectorizes (indexing the 2-D arrays with offsets ran three times slower).
@serial
def _gates(row, hidden):
    return row[:hidden], row[hidden:2 * hidden], row[2 * hidden:3 * hidden], row[3 * hidden:]


@serial
def _lstm_preactivate(a, gx, half):
    """a <- (a + gx) * 0.5 for the sigmoid gates i, f, o, a + gx for g."""
    for r in range(a.shape[0]):
        row, add = a[r], gx[r]
        for j in range(row.size):
            row[j] += add[j]
        i, f, _, o = _gates(row, row.size // 4)
        for j in range(i.size):
            i[j] *= half
            f[j] *= half
            o[j] *= half


@serial
def _lstm_update_cell(a, c, half):
    """a (the tanh of the scaled pre-activations) <- the gates; c <- f c + i g."""
    for r in range(a.shape[0]):
        i, f, g, o = _gates(a[r], c.shape[1])
        cell = c[r]
        for j in range(cell.size):
            i[j] = i[j] * half + half
            f[j] = f[j] * half + half
            o[j] = o[j] * half + half
            cell[j] = cell[j] * f[j] + i[j] * g[j]


@serial
def _lstm_output(a, tanh_c, h):
    for r in range(h.shape[0]):
        o, t, out = _gates(a[r], h.shape[1])[3], tanh_c[r], h[r]
        for j in range(out.size):
            out[j] = o[j] * t[j]


def lstm_cell(a, gx, c, tanh_c, h):
    """reference.lstm_cell in three fused passes around NumPy's two tanh passes."""
    half = a.dtype.type(0.5)
    _lstm_preactivate(a, gx, half)
    np.tanh(a, out=a)
    _lstm_update_cell(a, c, half)
    np.tanh(c, out=tanh_c)
    _lstm_output(a, tanh_c, h)


@serial
def lstm_cell_backward(dh, dc, a, c_prev, tanh_c, d, one):
    """reference.lstm_cell_backward in one pass; one is 1 in the arrays' dtype (a literal 1 would widen float32
    arithmetic to float64)."""
    hidden = dc.shape[1]
    for r in range(dc.shape[0]):
        i, f, g, o = _gates(a[r], hidden)
        di, df, dg, do = _gates(d[r], hidden)
        dh_r, dc_r, c_r, t = dh[r], dc[r], c_prev[r], tanh_c[r]
        for j in range(hidden):
            dcell = dc_r[j] + dh_r[j] * o[j] * (one - t[j] * t[j])
            di[j] = dcell * g[j] * i[j] * (one - i[j])
            df[j] = dcell * c_r[j] * f[j] * (one - f[j])
            dg[j] = dcell * i[j] * (one - g[j] * g[j])
            do[j] = dh_r[j] * t[j] * o[j] * (one - o[j])
            dc_r[j] = dcell * f[j]


# --- the CPU settings on the worker threads ---------------------------------------------------------------------
@intrinsic
def _mxcsr(typingctx, value):
    """Write value into this thread's MXCSR when it is >= 0; return the MXCSR as it was (x86-64 only)."""

    def codegen(context, builder, signature, args):
        word, pointer = ir.IntType(32), ir.IntType(8).as_pointer()
        access = ir.FunctionType(ir.VoidType(), [pointer])
        slot = builder.alloca(word)
        address = builder.bitcast(slot, pointer)
        builder.call(builder.module.declare_intrinsic("llvm.x86.sse.stmxcsr", fnty=access), [address])
        old = builder.load(slot)
        with builder.if_then(builder.icmp_signed(">=", args[0], ir.Constant(ir.IntType(64), 0))):
            builder.store(builder.trunc(args[0], word), slot)
            builder.call(builder.module.declare_intrinsic("llvm.x86.sse.ldmxcsr", fnty=access), [address])
        return builder.zext(old, ir.IntType(64))

    return types.int64(types.int64), codegen


@compiled
def _flush_bits_on_every_thread(bits, mode, seen):
    """Set (mode) or clear the MXCSR bits on each worker; seen[k] gets the flush bits as they were after."""
    for k in prange(seen.size):  # static chunks: every worker gets iterations
        old = _mxcsr(-1)
        _mxcsr((old | bits) if mode else (old & ~bits))
        seen[k] = _mxcsr(-1) & bits


def flush_on_workers(mode):
    """Give every worker thread the flush-to-zero setting (threads started earlier keep their own otherwise)."""
    seen = np.empty(8 * numba.config.NUMBA_NUM_THREADS, np.int64)
    with _launch:
        _flush_bits_on_every_thread(backend._MXCSR_FLUSH_BITS, bool(mode), seen)


@compiled
def _probe_flush(tiny, one, flushed, thread):
    for k in prange(flushed.size):
        flushed[k] = tiny[0] * one[0] == 0
        thread[k] = numba.get_thread_id()


def workers_flush():
    """{worker thread id: whether it flushes a subnormal product to zero}, for the tests."""
    tiny, one = np.array([0x000AE398], np.uint32).view(np.float32), np.ones(1, np.float32)
    flushed, thread = np.empty(8 * numba.config.NUMBA_NUM_THREADS, np.bool_), np.empty(
        8 * numba.config.NUMBA_NUM_THREADS, np.int64)
    with _launch:
        _probe_flush(tiny, one, flushed, thread)
    return dict(zip(thread.tolist(), flushed.tolist()))


_threads = 1  # the thread count lamina asked for, as use_threads last set it
PARALLEL_WORK = 1 << 20  # elements; see _parallel


def use_threads(n):
    global _threads
    _threads = min(n, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(_threads)


def _parallel(work):
    """Whether a job of `work` elements repays a parallel launch. Numba's workqueue takes 70-90 us to start
    one, even at one thread (OpenMP's takes 1-2 us, but PyTorch's cannot share a process with Numba's). On the
    2-core reference machine two threads then gained little below a million elements, and often lost:
    Adam's step on 1,048,576 weights 0.56 ms serial, 0.82 ms on two; max pooling W2's 2.8 million 1.61, 1.54."""
    return _threads > 1 and work >= PARALLEL_WORK


def _twins(kernel):
    """kernel (a @compiled function, its first argument the size of its job) compiled a second time from the
    same source without parallel=True, where prange runs as range; the serial twin runs where one thread
    works (_parallel). Adam's step on W2's largest weight, 205,000 elements: 0.21 ms launched, 0.085 serial."""
    source = kernel.py_func
    twin = type(source)(source.__code__, source.__globals__, source.__name__ + "_serial", source.__defaults__)
    twin.__qualname__ = source.__qualname__ + "_serial"  # its own entry in Numba's on-disk cache
    serial_twin = njit(fastmath=False, error_model="numpy", cache=True)(twin)

    @functools.wraps(source)
    def launch(*args):
        if not _parallel(args[0].size):
            return serial_twin(*args)
        with _launch:
            return kernel(*args)

    return launch


def _start():
    """Follow lamina's thread count and flush setting now and whenever they change."""
    use_threads(backend.get_num_threads())
    backend._threads_changed.append(use_threads)
    if backend._libm() is not None:
        flush_on_workers(backend.flush_denormal())
        backend._flush_listeners.append(flush_on_workers)


im2col, col2im, max_pool, max_pool_scatter, adam_step, sgd_step, layer_norm_backward = map(
    _twins, (im2col, col2im, max_pool, max_pool_scatter, adam_step, sgd_step, layer_norm_backward))
_start()
