"""lamina's hot loops on a GPU: CuPy kernels, each one launch where the NumPy reference takes several.

Imported by lamina.kernels the first time a CuPy array reaches a dispatcher, never by `import lamina`; the
kernels are compiled by CuPy on their first call (and cached on disk by CuPy). Each matches its reference
twin in lamina.kernels.reference to float32 rounding (tests/test_cuda.py holds them to it on a GPU).
"""

import math

from lamina import backend

cupy = backend.cuda_module("lamina.kernels.gpu")  # CuPy, through the one module that knows it

# One Adam (AdamW when decoupled) update per element, in the order torch.optim.Adam rounds it: the eleven
# passes of the reference in one launch. The scalars come in the parameter's dtype, computed as the reference
# computes them (in Python floats, then rounded once).
_adam = cupy.ElementwiseKernel(
    "T g, T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T root_bias2, T step_size, T weight_decay, "
    "T decay_factor, bool decoupled",
    "T p, T m, T v",
    """
    T grad = g;
    if (decoupled) {
        p = p * decay_factor;
    } else if (weight_decay != (T)0) {
        grad = grad + weight_decay * p;
    }
    m = m + (grad - m) * one_minus_beta1;
    v = v * beta2 + (grad * grad) * one_minus_beta2;
    p = p - (m / (sqrt(v) / root_bias2 + eps)) * step_size;
    """,
    "lamina_adam_step",
)


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled):
    t = param.dtype.type
    _adam(grad, t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(math.sqrt(1 - beta2**step)),
          t(lr / (1 - beta1**step)), t(weight_decay), t(1 - lr * weight_decay), bool(decoupled), param, m, v)


_sgd = cupy.ElementwiseKernel(
    "T g, T lr, T weight_decay", "T p", "p = p - lr * (g + weight_decay * p)", "lamina_sgd_step")


def sgd_step(param, grad, lr, weight_decay):
    """Plain SGD (no momentum) in one launch."""
    t = param.dtype.type
    _sgd(grad, t(lr), t(weight_decay), param)


# y <- max(y + bias, 0), bias along the last axis (broadcast by CuPy); NaN stays NaN as in the reference.
_bias_relu = cupy.ElementwiseKernel(
    "T b", "T y", "T s = y + b; y = (s > (T)0 || s != s) ? s : (T)0", "lamina_bias_relu")

_relu_backward = cupy.ElementwiseKernel(
    "T g, T y", "T out", "out = y > (T)0 ? g : (T)0", "lamina_relu_backward")


def bias_relu_(y, bias):
    _bias_relu(bias, y)
    return y


def relu_backward(g, y):
    return _relu_backward(g, y)


# --- matrix products through cuBLAS, called directly ------------------------------------------------------------
# CuPy's matmul costs tens of microseconds of Python per call, a large part of a small layer's step, and CuPy
# refuses any cuBLAS call while a stream is being captured into a CUDA graph (its own check, not cuBLAS's).
# lamina calls cuBLAS's gemm itself through ctypes, on a handle of its own with a workspace of its own (so that
# a captured product allocates nothing): a few microseconds per product, and capturable.
_OP_N, _OP_T = 0, 1
_blas = {}  # GPU index -> (library, handle, workspace, [stream the handle was last set to], scalars), or None


def _cublas():
    """lamina's cuBLAS handle on the current GPU, or None where libcublas cannot be reached this way (then
    CuPy's matmul runs the products)."""
    index = cupy.cuda.runtime.getDevice()
    if index not in _blas:
        try:
            _blas[index] = _open_cublas()
        except (OSError, RuntimeError, AttributeError) as e:
            import warnings

            warnings.warn(f"lamina.kernels.gpu: calling cuBLAS directly failed ({e}); products go through "
                          "CuPy's matmul (slower, and not capturable into a CUDA graph)", RuntimeWarning, stacklevel=3)
            _blas[index] = None
    return _blas[index]


def _open_cublas():
    """CuPy's libcublas, opened again through ctypes, with a handle and a 32 MiB workspace of lamina's own."""
    import ctypes

    cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle())  # CuPy loads libcublas here
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/libcublas.so" in line}
    if not paths:
        raise RuntimeError("lamina.kernels.gpu: CuPy's libcublas was not found in this process")
    library = ctypes.CDLL(sorted(paths)[0])
    handle = ctypes.c_void_p()
    _check(library.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
    workspace = cupy.empty(1 << 25, dtype=cupy.uint8)
    _check(library.cublasSetWorkspace_v2(handle, ctypes.c_void_p(workspace.data.ptr),
                                         ctypes.c_size_t(workspace.nbytes)), "cublasSetWorkspace")
    for name, real in (("cublasSgemm_v2", ctypes.c_float), ("cublasDgemm_v2", ctypes.c_double)):
        gemm = getattr(library, name)
        gemm.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                         ctypes.POINTER(real), ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                         ctypes.POINTER(real), ctypes.c_void_p, ctypes.c_int]
    scalars = {dtype: (ctypes.byref(real(1)), ctypes.byref(real(0)), gemm_name)
               for dtype, real, gemm_name in ((cupy.dtype(cupy.float32), ctypes.c_float, "cublasSgemm_v2"),
                                              (cupy.dtype(cupy.float64), ctypes.c_double, "cublasDgemm_v2"))}
    return library, handle, workspace, [None], scalars


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"lamina.kernels.gpu: {what} failed with cuBLAS status {status}")


def _operand(a):
    """(op, leading dimension) of a 2-D array seen as cuBLAS's column-major storage of a.T, or None when its
    layout is neither row- nor column-contiguous."""
    rows, cols = a.shape
    s0, s1 = (s // a.itemsize for s in a.strides)
    if s1 == 1 and s0 >= max(1, cols):
        return _OP_N, max(1, s0)  # row-major: the buffer is a.T in column-major
    if s0 == 1 and s1 >= max(1, rows):
        return _OP_T, max(1, s1)  # column-major (a transposed view): the buffer is a itself
    return None


def matmul(a, b):
    """a @ b for 2-D float arrays of one dtype (C-contiguous result), or None where cuBLAS's gemm cannot read
    the operands as they lie (the caller then uses CuPy's matmul)."""
    m, k = a.shape
    n = b.shape[1]
    if not (m and n and k) or a.dtype != b.dtype or a.dtype not in (cupy.float32, cupy.float64):
        return None
    op_a, op_b = _operand(a), _operand(b)
    blas = _cublas()
    if op_a is None or op_b is None or blas is None:
        return None
    library, handle, _, stream_set, scalars = blas
    stream = cupy.cuda.get_current_stream().ptr
    if stream_set[0] != stream:
        _check(library.cublasSetStream_v2(handle, stream), "cublasSetStream")
        stream_set[0] = stream
    out = cupy.empty((m, n), dtype=a.dtype)
    one, zero, gemm = scalars[a.dtype]
    # Row-major C = A B is column-major C.T = B.T A.T: B's buffer comes first.
    _check(getattr(library, gemm)(handle, op_b[0], op_a[0], n, m, k, one, b.data.ptr, op_b[1], a.data.ptr,
                                  op_a[1], zero, out.data.ptr, n), gemm)
    return out


# --- cross-entropy over class indices, without a host round trip -----------------------------------------------
# The reference checks the labels on the host (a range test, the ignore_index test), which on a GPU stops the
# host until the device has caught up, every step. Here a label out of range makes that row's loss NaN, which
# the training loop reports (lamina stops at a non-finite loss, naming the epoch and batch); ignored rows count
# for nothing, as in PyTorch. One thread per row: the class counts of classifiers (a few to a few hundred).
MAX_CLASSES = 1024
# NVRTC compiles without the C headers: infinity and NaN come from their bit patterns.
_CONSTANTS = r"""
#define LAMINA_INF __longlong_as_double(0x7ff0000000000000LL)
#define LAMINA_NAN __longlong_as_double(0x7ff8000000000000LL)
"""
_CROSS_ENTROPY = _CONSTANTS + r"""
extern "C" __global__ void lamina_ce_forward_{T}(const {T}* x, const long long* labels, {T}* loss, {T}* lse,
                                                  {T}* valid, int n, int c, long long ignore) {{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const {T}* row = x + (size_t)i * c;
    {T} top = row[0];
    for (int j = 1; j < c; ++j) top = row[j] > top ? row[j] : top;
    {T} total = 0;
    for (int j = 0; j < c; ++j) total += exp(row[j] - top);
    {T} norm = top + log(total);
    long long t = labels[i];
    lse[i] = norm;
    if (t == ignore) {{ loss[i] = 0; valid[i] = 0; }}
    else if (t < 0 || t >= c) {{ loss[i] = LAMINA_NAN; valid[i] = 1; }}
    else {{ loss[i] = norm - row[t]; valid[i] = 1; }}
}}

extern "C" __global__ void lamina_ce_mean_{T}(const {T}* loss, const {T}* valid, {T}* out, int n) {{
    __shared__ {T} sums[256];
    __shared__ {T} counts[256];
    {T} s = 0, k = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {{ s += loss[i]; k += valid[i]; }}
    sums[threadIdx.x] = s;
    counts[threadIdx.x] = k;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {{
        if (threadIdx.x < half) {{
            sums[threadIdx.x] += sums[threadIdx.x + half];
            counts[threadIdx.x] += counts[threadIdx.x + half];
        }}
        __syncthreads();
    }}
    if (threadIdx.x == 0) {{ out[0] = sums[0] / counts[0]; out[1] = counts[0]; }}
}}

extern "C" __global__ void lamina_ce_backward_{T}(const {T}* x, const long long* labels, const {T}* lse,
                                                   const {T}* gy, const {T}* count, {T}* gx, int n, int c,
                                                   long long ignore, int per_row) {{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * c) return;
    int i = e / c, j = e % c;
    long long t = labels[i];
    if (t == ignore) {{ gx[e] = 0; return; }}
    if (t < 0 || t >= c) {{ gx[e] = LAMINA_NAN; return; }}  /* a NaN loss gets NaN gradients, never finite ones */
    {T} scale = per_row ? gy[i] : gy[0] / count[0];
    gx[e] = (exp(x[e] - lse[i]) - (j == t ? ({T})1 : ({T})0)) * scale;
}}
"""
_ce_modules = {}


def _ce_kernel(dtype, name):
    ctype = "float" if dtype == cupy.float32 else "double"
    module = _ce_modules.get(ctype)
    if module is None:
        module = _ce_modules[ctype] = cupy.RawModule(code=_CROSS_ENTROPY.format(T=ctype))
    return module.get_function(f"lamina_ce_{name}_{ctype}")


def cross_entropy_usable(x, labels):
    return (x.ndim == 2 and x.dtype in (cupy.float32, cupy.float64) and labels.dtype == cupy.int64
            and x.flags.c_contiguous and labels.flags.c_contiguous and 0 < x.shape[1] <= MAX_CLASSES
            and 0 < x.shape[0] and labels.shape == x.shape[:1])


def cross_entropy(x, labels, ignore_index, reduction):
    """(loss, saved) for the fused cross-entropy: loss is 0-d ("mean", "sum") or per row ("none")."""
    n, c = x.shape
    loss, lse, valid = (cupy.empty(n, dtype=x.dtype) for _ in range(3))
    _ce_kernel(x.dtype, "forward")(((n + 127) // 128,), (128,),
                                    (x, labels, loss, lse, valid, cupy.int32(n), cupy.int32(c),
                                     cupy.int64(ignore_index)))
    if reduction == "none":
        return loss, (lse, None)
    if reduction == "sum":
        return loss.sum(), (lse, None)
    mean_and_count = cupy.empty(2, dtype=x.dtype)
    _ce_kernel(x.dtype, "mean")((1,), (256,), (loss, valid, mean_and_count, cupy.int32(n)))
    return mean_and_count[0], (lse, mean_and_count[1:])


def cross_entropy_backward(x, labels, saved, gy, ignore_index, reduction):
    lse, count = saved
    n, c = x.shape
    gx = cupy.empty_like(x)
    gy = cupy.ascontiguousarray(gy.astype(x.dtype, copy=False))
    ones = count if count is not None else cupy.ones(1, dtype=x.dtype)
    blocks = (n * c + 255) // 256
    _ce_kernel(x.dtype, "backward")((blocks,), (256,), (x, labels, lse, gy, ones, gx, cupy.int32(n), cupy.int32(c),
                                                        cupy.int64(ignore_index), cupy.int32(reduction == "none")))
    return gx


# --- windows (convolution, pooling): one launch each, padding read as zeros (or -inf) in place --------------------
# Images are channels-last (N, H, W, C), as everywhere in lamina's convolution; `g` is lamina.ops.conv.Geometry.
# Each thread computes one output element; the col2im and pooling gradients gather (each input element sums
# what reached it) rather than scatter, so no atomics and the same sums in the same order on every run.
_WINDOWS = _CONSTANTS + r"""
typedef signed char schar;
#define WINDOW_ARGS int n, int h, int w, int c, int ho, int wo, int kh, int kw, int sh, int sw, int dh, int dw, \
                    int pt, int pl
extern "C" __global__ void lamina_im2col_{T}(const {T}* v, {T}* cols, WINDOW_ARGS) {{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)n * ho * wo * kh * kw * c;
    if (e >= total) return;
    int ch = e % c; size_t t = e / c;
    int kj = t % kw; t /= kw;
    int ki = t % kh; t /= kh;
    int ow = t % wo; t /= wo;
    int oh = t % ho; int b = t / ho;
    int y = oh * sh + ki * dh - pt, x = ow * sw + kj * dw - pl;
    cols[e] = (y >= 0 && y < h && x >= 0 && x < w) ? v[(((size_t)b * h + y) * w + x) * c + ch] : ({T})0;
}}

extern "C" __global__ void lamina_col2im_{T}(const {T}* cols, {T}* out, WINDOW_ARGS) {{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * h * w * c) return;
    int ch = e % c; size_t t = e / c;
    int x = t % w; t /= w;
    int y = t % h; int b = t / h;
    {T} total = 0;
    for (int ki = 0; ki < kh; ++ki) {{
        int dy = y + pt - ki * dh;
        if (dy < 0 || dy % sh) continue;
        int oh = dy / sh;
        if (oh >= ho) continue;
        for (int kj = 0; kj < kw; ++kj) {{
            int dx = x + pl - kj * dw;
            if (dx < 0 || dx % sw) continue;
            int ow = dx / sw;
            if (ow >= wo) continue;
            total += cols[((((size_t)b * ho + oh) * wo + ow) * kh * kw + ki * kw + kj) * c + ch];
        }}
    }}
    out[e] = total;
}}

extern "C" __global__ void lamina_max_pool_{T}_{I}(const {T}* v, {T}* best, {I}* index, int relu, WINDOW_ARGS) {{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * ho * wo * c) return;
    int ch = e % c; size_t t = e / c;
    int ow = t % wo; t /= wo;
    int oh = t % ho; int b = t / ho;
    {T} top = 0;
    int at = 0;
    for (int ki = 0; ki < kh; ++ki) {{
        for (int kj = 0; kj < kw; ++kj) {{
            int y = oh * sh + ki * dh - pt, x = ow * sw + kj * dw - pl;
            {T} value = (y >= 0 && y < h && x >= 0 && x < w) ? v[(((size_t)b * h + y) * w + x) * c + ch]
                                                               : -({T})LAMINA_INF;
            int k = ki * kw + kj;
            if (k == 0) {{ top = value; continue; }}
            if (value > top) {{ top = value; at = k; }}
            else if (value != value) top = value;  /* NaN wins, as NumPy's maximum gives; the index stays */
        }}
    }}
    if (relu && !(top > 0) && top == top) top = 0;
    best[e] = top;
    index[e] = ({I})at;
}}

extern "C" __global__ void lamina_max_pool_scatter_{T}_{I}(const {T}* gy, const {I}* index, {T}* out,
                                                         WINDOW_ARGS) {{
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * h * w * c) return;
    int ch = e % c; size_t t = e / c;
    int x = t % w; t /= w;
    int y = t % h; int b = t / h;
    {T} total = 0;
    for (int ki = 0; ki < kh; ++ki) {{
        int dy = y + pt - ki * dh;
        if (dy < 0 || dy % sh) continue;
        int oh = dy / sh;
        if (oh >= ho) continue;
        for (int kj = 0; kj < kw; ++kj) {{
            int dx = x + pl - kj * dw;
            if (dx < 0 || dx % sw) continue;
            int ow = dx / sw;
            if (ow >= wo) continue;
            size_t o = (((size_t)b * ho + oh) * wo + ow) * c + ch;
            if (index[o] == ki * kw + kj) total += gy[o];
        }}
    }}
    out[e] = total;
}}
"""
_window_modules = {}


def _window_kernel(dtype, index_dtype, name):
    ctype = "float" if dtype == cupy.float32 else "double"
    itype = "schar" if index_dtype == cupy.int8 else "int"
    module = _window_modules.get((ctype, itype))
    if module is None:
        module = _window_modules[ctype, itype] = cupy.RawModule(code=_WINDOWS.format(T=ctype, I=itype))
    suffix = "" if name in ("im2col", "col2im") else "_" + itype
    return module.get_function(f"lamina_{name}_{ctype}{suffix}")


def _window_args(n, c, g):
    (pt, _), (pl, _) = g.pads
    return tuple(cupy.int32(a) for a in (n, *g.in_hw, c, *g.out_hw, *g.kernel, *g.stride, *g.dilation, pt, pl))


def _launch(kernel, total, args):
    if total:  # an empty grid is a CUDA error
        kernel(((total + 255) // 256,), (256,), args)


def windows_usable(v):
    return v.dtype in (cupy.float32, cupy.float64)


def im2col(v, g):
    n, c = v.shape[0], v.shape[3]
    v = cupy.ascontiguousarray(v)
    cols = cupy.empty((n * g.out_hw[0] * g.out_hw[1], g.kernel[0] * g.kernel[1] * c), dtype=v.dtype)
    _launch(_window_kernel(v.dtype, cupy.int8, "im2col"), cols.size, (v, cols) + _window_args(n, c, g))
    return cols


def conv_input_grad(rows, w, g, n):
    o, c = w.shape[:2]
    weight = cupy.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, -1))
    cols = matmul(cupy.ascontiguousarray(rows), weight)
    if cols is None:
        cols = rows @ weight
    out = cupy.empty((n, *g.in_hw, c), dtype=rows.dtype)
    _launch(_window_kernel(rows.dtype, cupy.int8, "col2im"), out.size, (cols, out) + _window_args(n, c, g))
    return out


def max_pool(v, g, relu=False):
    n, c = v.shape[0], v.shape[3]
    v = cupy.ascontiguousarray(v)
    index_dtype = cupy.int8 if math.prod(g.kernel) < 128 else cupy.int32
    best = cupy.empty((n, *g.out_hw, c), dtype=v.dtype)
    index = cupy.empty(best.shape, dtype=index_dtype)
    _launch(_window_kernel(v.dtype, index_dtype, "max_pool"), best.size,
            (v, best, index, cupy.int32(bool(relu))) + _window_args(n, c, g))
    return best, index


def max_pool_scatter(gy, index, g, n):
    c = gy.shape[3]
    out = cupy.empty((n, *g.in_hw, c), dtype=gy.dtype)
    _launch(_window_kernel(gy.dtype, index.dtype, "max_pool_scatter"), out.size,
            (cupy.ascontiguousarray(gy), cupy.ascontiguousarray(index), out) + _window_args(n, c, g))
    return out
