"""The functional forms of layers and losses, named as in torch.nn.functional."""

import math

import numpy as np

from lamina import ops
from lamina.autograd import as_tensor, no_grad, wrap
from lamina.backend import generator, get_array_module
from lamina.ops import conv as conv_ops
from lamina.ops import linear, log_softmax, relu, sigmoid, softmax, tanh  # noqa: F401  (re-exported)
from lamina.ops.nn import BinaryCrossEntropy, CrossEntropy
from lamina.ops.nn import binary_cross_entropy_with_logits as _bce_with_logits
from lamina.ops.shape import pad  # noqa: F401  (re-exported)

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, not {reduction!r}")


def _same_shape(input, target, op):
    if input.shape != target.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")


# --- activations -----------------------------------------------------------------------------------
def leaky_relu(input, negative_slope=0.01):
    return ops.where(input > 0, input, input * negative_slope)


def elu(input, alpha=1.0):
    return ops.where(input > 0, input, alpha * (ops.exp(ops.minimum(input, 0.0)) - 1))


def gelu(input, approximate="none"):
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (input + 0.044715 * input**3)
        return 0.5 * input * (1 + ops.tanh(inner))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")
    return 0.5 * input * (1 + ops.erf(input * (1 / math.sqrt(2))))


def silu(input):
    return input * ops.sigmoid(input)


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = generator().random(input.shape, dtype=np.float32) >= p
    xp = get_array_module(input.data)
    scale = xp.asarray(keep) * input.dtype.type(1 / (1 - p))  # one pass, straight to the input's dtype
    return input * wrap(scale)


def one_hot(tensor, num_classes=-1):
    labels = as_tensor(tensor).data
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, not {labels.dtype}")
    if num_classes < 0:
        num_classes = int(labels.max()) + 1
    return wrap(np.eye(num_classes, dtype=np.int64)[labels])


def embedding(input, weight, padding_idx=None):
    indices = as_tensor(input).data
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, not {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= weight.shape[0]):
        raise IndexError(
            f"embedding: indices must lie in [0, {weight.shape[0]}), got [{indices.min()}, {indices.max()}]"
        )
    out = weight[indices]
    if padding_idx is not None:  # the padding row's value passes through but receives no gradient
        out = ops.where(wrap((indices == padding_idx)[..., None]), out.detach(), out)
    return out


# --- losses -------------------------------------------------------------------------------------------
def mse_loss(input, target, reduction="mean"):
    target = as_tensor(target, like=input)
    _same_shape(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    target = as_tensor(target, like=input)
    _same_shape(input, target, "l1_loss")
    return _reduce(ops.abs(input - target), reduction, "l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    target = as_tensor(target, like=input)
    _same_shape(input, target, "huber_loss")
    diff = ops.abs(input - target)
    small = 0.5 * diff * diff
    large = delta * (diff - 0.5 * delta)
    return _reduce(ops.where(diff < delta, small, large), reduction, "huber_loss")


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """BCE on probabilities; logs are clamped at -100 as in PyTorch, so p = 0 or 1 gives no inf."""
    target = as_tensor(target, like=input)
    _same_shape(input, target, "binary_cross_entropy")
    if input.data.size and (input.data.min() < 0 or input.data.max() > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; "
                         "for logits use binary_cross_entropy_with_logits")
    loss = BinaryCrossEntropy()(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    target = as_tensor(target, like=input)
    if weight is None and pos_weight is None:
        return _bce_with_logits(input, target, reduction)
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    # log(1 + exp(-z)) written so it never overflows: max(-z, 0) + log1p(exp(-|z|))
    softplus_neg = ops.maximum(-input, 0.0) + ops.log(1 + ops.exp(-ops.abs(input)))
    if pos_weight is None:
        loss = (1 - target) * input + softplus_neg
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _class_last(input):
    """(N, C, d1, ...) logits as (N * d1 * ..., C), the layout the losses below work in."""
    if input.ndim <= 2:
        return input
    moved = ops.permute(input, 0, *range(2, input.ndim), 1)
    return ops.reshape(moved, -1, input.shape[1])


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices under log-probabilities `input` (N, C, ...)."""
    labels = as_tensor(target).data
    if labels.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold class indices (integers), not {labels.dtype}")
    if input.ndim < 1 or labels.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"nll_loss: input of shape {input.shape} needs target of shape "
                         f"{input.shape[:1] + input.shape[2:]}, got {labels.shape}")
    logp = _class_last(input if input.ndim > 1 else ops.unsqueeze(input, 0))
    labels = labels.reshape(-1)
    classes = logp.shape[1]
    valid = labels != ignore_index
    if ((labels < 0) | (labels >= classes))[valid].any():
        raise IndexError(f"nll_loss: target holds classes outside [0, {classes}) (shape {input.shape})")
    safe = np.where(valid, labels, 0)
    w = np.ones(classes, dtype=input.dtype) if weight is None else as_tensor(weight).data.astype(input.dtype)
    sample_w = w[safe] * valid
    picked = ops.gather(logp, 1, safe[:, None]).reshape(-1)
    loss = -picked * wrap(sample_w)
    if reduction == "mean":
        return loss.sum() / float(sample_w.sum())
    if reduction == "none":
        return loss.reshape(as_tensor(target).shape)
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits (N, C, ...) against class indices or class probabilities."""
    target = as_tensor(target)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    probabilities = target.data.dtype.kind == "f"
    if probabilities:
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy: class-probability target of shape {target.shape} must match "
                             f"input of shape {input.shape}")
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    labels = target.data
    fused = (input.ndim == 2 and weight is None and label_smoothing == 0 and labels.shape == input.shape[:1]
             and not (labels == ignore_index).any())
    if fused:
        if labels.size and (labels.min() < 0 or labels.max() >= input.shape[1]):
            raise IndexError(f"cross_entropy: target holds classes outside [0, {input.shape[1]}) "
                             f"(input shape {input.shape})")
        return CrossEntropy(labels, reduction)(input)
    logp = log_softmax(input, 1 if input.ndim > 1 else 0)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    w = None if weight is None else as_tensor(weight)
    flat = _class_last(logp if logp.ndim > 1 else ops.unsqueeze(logp, 0))
    valid = (labels.reshape(-1) != ignore_index)
    smooth = -(flat * w).sum(1) if w is not None else -flat.sum(1)
    smooth = smooth * wrap(valid.astype(input.dtype))
    if reduction == "mean":
        denominator = float((w.data[np.where(valid, labels.reshape(-1), 0)] * valid).sum()) if w is not None \
            else float(valid.sum())
        smooth = smooth.sum() / denominator
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        smooth = smooth.reshape(labels.shape)
    return (1 - label_smoothing) * nll + (label_smoothing / classes) * smooth


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    dim = 1 if input.ndim > 1 else 0
    classes = input.shape[dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    logp = log_softmax(input, dim)
    if weight is not None:
        shape = [1] * input.ndim
        shape[dim] = classes
        logp = logp * as_tensor(weight).reshape(shape)
    loss = -(logp * target).sum(dim)
    if reduction == "mean":
        return loss.sum() / (loss.data.size if input.ndim > 1 else 1)
    return _reduce(loss, reduction, "cross_entropy")




# --- convolution, pooling, normalization ---------------------------------------------------------------
def _check_input(x, ndim, op):
    if x.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D input ({'N, C, H, W' if ndim == 4 else 'N, C, L'}), "
                         f"got shape {x.shape}")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) input with (O, C/groups, kh, kw) weight."""
    _check_input(input, 4, "conv2d")
    if weight.ndim != 4 or input.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: input of shape {input.shape} does not fit weight of shape {weight.shape} "
                         f"with groups={groups} (input channels must equal weight.shape[1] * groups)")
    g = conv_ops.geometry(input.shape[2:], weight.shape[2:], stride, padding, dilation)
    function = conv_ops.Conv2d(g, groups)
    return function(input, weight) if bias is None else function(input, weight, bias)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    _check_input(input, 3, "conv1d")
    if weight.ndim != 3:
        raise ValueError(f"conv1d: weight must be (O, C/groups, k), got shape {weight.shape}")
    padding = padding if isinstance(padding, str) else (0, _single(padding))
    out = conv2d(ops.unsqueeze(input, 2), ops.unsqueeze(weight, 2), bias, (1, _single(stride)), padding,
                 (1, _single(dilation)), groups)
    return ops.squeeze(out, 2)


def _single(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution: the input gradient of conv2d, with weight of shape (C_in, C_out/groups, kh, kw)."""
    _check_input(input, 4, "conv_transpose2d")
    if weight.ndim != 4 or input.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise ValueError(f"conv_transpose2d: input of shape {input.shape} does not fit weight of shape "
                         f"{weight.shape} (input channels must equal weight.shape[0])")
    kernel = weight.shape[2:]
    stride, padding = conv_ops._pair(stride, "stride"), conv_ops._pair(padding, "padding")
    dilation, extra = conv_ops._pair(dilation, "dilation"), conv_ops._pair(output_padding, "output_padding")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1
                   for n, s, p, d, k, e in zip(input.shape[2:], stride, padding, dilation, kernel, extra))
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {extra} must be smaller than stride {stride} "
                         f"or dilation {dilation}")
    # The convolution this transposes: from the output size back to the input's; output_padding rows that
    # no window reaches get only the bias.
    g = conv_ops.geometry(out_hw, kernel, stride, padding, dilation, op="conv_transpose2d")
    g = g._replace(out_hw=tuple(input.shape[2:]))
    x_shape = (input.shape[0], weight.shape[1] * groups, *out_hw)
    out = conv_ops.Conv2dInputGrad(g, groups, x_shape)(input, weight)
    return out if bias is None else out + ops.reshape(bias, (1, -1, 1, 1))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _check_input(input, 4, "max_pool2d")
    g = conv_ops.geometry(input.shape[2:], kernel_size, kernel_size if stride is None else stride, padding,
                          dilation, ceil_mode, op="max_pool2d")
    if any(2 * p > k for p, k in zip((g.pads[0][0], g.pads[1][0]), g.kernel)):
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel size {g.kernel}")
    pool = conv_ops.MaxPool(g)
    out = pool(input)
    if not return_indices:
        return out
    # PyTorch's indices: the flat position h * W + w of each window's maximum in its input plane
    ki, kj = np.divmod(pool.index.astype(np.int64), g.kernel[1])
    rows = np.arange(g.out_hw[0])[:, None, None] * g.stride[0] - g.pads[0][0] + ki * g.dilation[0]
    cols = np.arange(g.out_hw[1])[None, :, None] * g.stride[1] - g.pads[1][0] + kj * g.dilation[1]
    return out, wrap(conv_ops._nchw(rows * input.shape[3] + cols))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    _check_input(input, 3, "max_pool1d")
    out = max_pool2d(ops.unsqueeze(input, 2), (1, _single(kernel_size)),
                     (1, _single(kernel_size if stride is None else stride)), (0, _single(padding)),
                     (1, _single(dilation)), ceil_mode)
    return ops.squeeze(out, 2)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    _check_input(input, 4, "avg_pool2d")
    g = conv_ops.geometry(input.shape[2:], kernel_size, kernel_size if stride is None else stride, padding, 1,
                          ceil_mode, op="avg_pool2d")
    return conv_ops.WindowMean(g, conv_ops.pool_divisor(g, count_include_pad, input.dtype))(input)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    _check_input(input, 3, "avg_pool1d")
    out = avg_pool2d(ops.unsqueeze(input, 2), (1, _single(kernel_size)),
                     (1, _single(kernel_size if stride is None else stride)), (0, _single(padding)), ceil_mode,
                     count_include_pad)
    return ops.squeeze(out, 2)


def adaptive_avg_pool2d(input, output_size):
    """Average over a grid of output_size cells, cell edges at floor(i H / out) and ceil((i + 1) H / out)."""
    _check_input(input, 4, "adaptive_avg_pool2d")
    out_h, out_w = conv_ops._pair(output_size, "output_size") if output_size is not None else input.shape[2:]
    h, w = input.shape[2:]
    if h % out_h == 0 and w % out_w == 0:  # equal cells: one pooling op
        return avg_pool2d(input, (h // out_h, w // out_w))
    rows = []
    for i in range(out_h):
        top, bottom = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        cells = [input[:, :, top:bottom, (j * w) // out_w:-(-((j + 1) * w) // out_w)].mean((2, 3))
                 for j in range(out_w)]
        rows.append(ops.stack(cells, dim=-1))
    return ops.stack(rows, dim=-2)


def dropout2d(input, p=0.5, training=True):
    """Zero whole channels with probability p (and scale the rest), in training only."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout2d: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    keep = generator().random(input.shape[:2], dtype=np.float32) >= p
    scale = keep * input.dtype.type(1 / (1 - p)) if p < 1 else keep.astype(input.dtype)
    return input * wrap(scale.reshape(*input.shape[:2], *([1] * (input.ndim - 2))))


def interpolate(input, size=None, scale_factor=None, mode="nearest"):
    """Nearest-neighbour upsampling by whole factors, built from reshape and broadcast (so it differentiates)."""
    if mode != "nearest":
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; only 'nearest'")
    spatial = input.shape[2:]
    if size is not None:
        size = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
        if any(s % n for s, n in zip(size, spatial)):
            raise ValueError(f"interpolate: size {size} must be a whole multiple of the input's {spatial}")
        factors = tuple(s // n for s, n in zip(size, spatial))
    elif scale_factor is not None:
        factors = (scale_factor,) * len(spatial) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if any(int(f) != f or f < 1 for f in factors):
            raise ValueError(f"interpolate: scale_factor must be whole numbers >= 1, got {scale_factor}")
        factors = tuple(int(f) for f in factors)
    else:
        raise ValueError("interpolate: give size or scale_factor")
    shape, expanded = list(input.shape[:2]), list(input.shape[:2])
    for n, f in zip(spatial, factors):
        shape += [n, 1]
        expanded += [n, f]
    out = ops.broadcast_to(ops.reshape(input, tuple(shape)), tuple(expanded))
    return ops.reshape(out, (*input.shape[:2], *(n * f for n, f in zip(spatial, factors))))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalize each channel (dim 1) by batch statistics in training, by running statistics in eval."""
    axes = (0, *range(2, input.ndim))
    shape = (1, -1, *([1] * (input.ndim - 2)))
    if training:
        count = input.data.size // input.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel in training, got input of shape "
                             f"{input.shape}")
        mean = input.mean(axes)
        centered = input - ops.reshape(mean, shape)
        var = (centered * centered).mean(axes)
        if running_mean is not None:
            with no_grad():  # running statistics use the unbiased variance, as PyTorch
                running_mean.data *= 1 - momentum
                running_mean.data += momentum * mean.data
                running_var.data *= 1 - momentum
                running_var.data += momentum * var.data * (count / (count - 1))
    else:
        mean, var = running_mean, running_var
        centered = input - ops.reshape(mean, shape)
    out = centered * ops.reshape((var + eps) ** -0.5, shape)
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(normalized_shape):] != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in {normalized_shape}")
    axes = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    centered = input - input.mean(axes, keepdim=True)
    out = centered * ((centered * centered).mean(axes, keepdim=True) + eps) ** -0.5
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = input.shape[:2]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels do not split into {num_groups} groups")
    grouped = ops.reshape(input, (n, num_groups, -1))
    centered = grouped - grouped.mean(2, keepdim=True)
    out = ops.reshape(centered * ((centered * centered).mean(2, keepdim=True) + eps) ** -0.5, input.shape)
    shape = (1, -1, *([1] * (input.ndim - 2)))
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


__all__ = [
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv1d", "conv2d", "conv_transpose2d", "cross_entropy", "dropout",
    "dropout2d", "elu", "embedding", "gelu", "group_norm", "huber_loss", "interpolate", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool1d", "max_pool2d", "mse_loss", "nll_loss", "one_hot", "pad",
    "relu", "sigmoid", "silu", "softmax", "tanh",
]
