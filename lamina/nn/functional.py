"""The functional forms of layers and losses, named as in torch.nn.functional."""

import math
import warnings

import numpy as np

from lamina import ops
from lamina.autograd import Tensor, as_operand, no_grad, wrap
from lamina.backend import generator_for, get_array_module
from lamina.ops import conv as conv_ops
from lamina.ops import linear, relu, sigmoid, tanh  # noqa: F401  (re-exported)
from lamina.ops.conv import avg_pool2d, conv2d, conv_transpose2d, max_pool2d  # noqa: F401  (re-exported)
from lamina.ops.ctc import CTCLoss
from lamina.ops.nn import (  # noqa: F401  (the fused loss kernels, re-exported)
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    check_reduction,
    check_same_device,
    check_same_shape,
    cross_entropy,
    legacy_reduction,
    nll_loss,
    reduce_loss,
)
from lamina.ops.nn import embedding as _embedding
from lamina.ops.nn import layer_norm as _fused_layer_norm
from lamina.ops.shape import pad  # noqa: F401  (re-exported)


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


def _implicit_dim(name, input, dim):
    """PyTorch's deprecated choice when softmax gets no dim: 0 for 0-, 1- and 3-D inputs, else 1 (with its warning)."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def softmax(input, dim=None, dtype=None):
    return ops.softmax(input if dtype is None else input.to(dtype), _implicit_dim("softmax", input, dim))


def log_softmax(input, dim=None, dtype=None):
    return ops.log_softmax(input if dtype is None else input.to(dtype), _implicit_dim("log_softmax", input, dim))


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = generator_for(input.array).random(input.shape, dtype=np.float32) >= p  # drawn on input's device
    scale = keep * input.dtype.type(1 / (1 - p))  # one pass, straight to the input's dtype
    return input * wrap(scale)


def one_hot(tensor, num_classes=-1):
    labels = as_operand(tensor).array
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, not {labels.dtype}")
    if num_classes < 0:
        num_classes = int(labels.max()) + 1
    return wrap(get_array_module(labels).eye(num_classes, dtype=np.int64)[labels])


def embedding(input, weight, padding_idx=None):
    check_same_device("embedding", weight, input)  # CuPy would take host indices silently; PyTorch refuses
    indices = as_operand(input).array
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, not {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= weight.shape[0]):
        raise IndexError(
            f"embedding: indices must lie in [0, {weight.shape[0]}), got [{indices.min()}, {indices.max()}]"
        )
    out = _embedding(indices, weight)
    if padding_idx is not None:  # the padding row's value passes through but receives no gradient
        out = ops.where(wrap((indices == padding_idx)[..., None]), out.detach(), out)
    return out


# --- losses -------------------------------------------------------------------------------------------
def mse_loss(input, target, reduction="mean"):
    target = as_operand(target, like=input)
    check_same_shape(input, target, "mse_loss")
    diff = input - target
    return reduce_loss(diff * diff, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    target = as_operand(target, like=input)
    check_same_shape(input, target, "l1_loss")
    return reduce_loss(ops.abs(input - target), reduction, "l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    target = as_operand(target, like=input)
    check_same_shape(input, target, "huber_loss")
    diff = ops.abs(input - target)
    small = 0.5 * diff * diff
    large = delta * (diff - 0.5 * delta)
    return reduce_loss(ops.where(diff < delta, small, large), reduction, "huber_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Huber loss divided by beta: quadratic below beta, linear above, as PyTorch's smooth_l1_loss."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce)
    if beta == 0:
        return l1_loss(input, target, reduction)
    return huber_loss(input, target, reduction, beta) / beta


# --- convolution, pooling, normalization ---------------------------------------------------------------


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    conv_ops.check_input(input, 3, "conv1d")
    if weight.ndim != 3:
        raise ValueError(f"conv1d: weight must be (O, C/groups, k), got shape {weight.shape}")
    padding = padding if isinstance(padding, str) else (0, _single(padding))
    out = conv2d(ops.unsqueeze(input, 2), ops.unsqueeze(weight, 2), bias, (1, _single(stride)), padding,
                 (1, _single(dilation)), groups)
    return ops.squeeze(out, 2)


def _single(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    conv_ops.check_input(input, 3, "max_pool1d")
    out = max_pool2d(ops.unsqueeze(input, 2), (1, _single(kernel_size)),
                     (1, _single(kernel_size if stride is None else stride)), (0, _single(padding)),
                     (1, _single(dilation)), ceil_mode)
    return ops.squeeze(out, 2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    conv_ops.check_input(input, 3, "avg_pool1d")
    out = avg_pool2d(ops.unsqueeze(input, 2), (1, _single(kernel_size)),
                     (1, _single(kernel_size if stride is None else stride)), (0, _single(padding)), ceil_mode,
                     count_include_pad)
    return ops.squeeze(out, 2)


def adaptive_avg_pool2d(input, output_size):
    """Average over a grid of output_size cells, cell edges at floor(i H / out) and ceil((i + 1) H / out)."""
    conv_ops.check_input(input, 4, "adaptive_avg_pool2d")
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
    keep = generator_for(input.array).random(input.shape[:2], dtype=np.float32) >= p
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
        count = input.array.size // input.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel in training, got input of shape "
                             f"{input.shape}")
        mean = input.mean(axes)
        centered = input - ops.reshape(mean, shape)
        var = (centered * centered).mean(axes)
        if running_mean is not None:
            check_same_device("batch_norm", input, running_mean)
            with no_grad():  # running statistics use the unbiased variance, as PyTorch
                running_mean.array *= 1 - momentum
                running_mean.array += momentum * mean.array
                running_var.array *= 1 - momentum
                running_var.array += momentum * var.array * (count / (count - 1))
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
    return _fused_layer_norm(input, len(normalized_shape), weight, bias, eps)


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


def _host(value):
    """A NumPy array of `value` (a tensor on any device, an array, a list or a number)."""
    return value._host_array() if isinstance(value, Tensor) else np.asarray(value)


def _lengths(value, batch, what):
    array = np.asarray(value._host_array() if isinstance(value, Tensor) else value)
    if array.shape != (batch,) or array.dtype.kind not in "iu":
        raise ValueError(f"ctc_loss: {what} must hold one integer per sequence ({batch}), got shape {array.shape} "
                         f"and dtype {array.dtype}")
    return array.astype(np.int64)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification loss, as torch.nn.functional.ctc_loss.

    log_probs (T, N, C) are log-softmax outputs (or (T, C) for one sequence); targets are (N, S) padded, or
    1-D, all targets one after another; lengths are one integer per sequence. 'mean' divides each loss by
    its target length, then averages over the batch. A target longer than its input cannot be aligned:
    that raises a ValueError, unless zero_infinity, where (as for any impossible alignment) the loss and
    its gradient are zero; without zero_infinity other impossible alignments give inf, as in PyTorch.
    The gradient is the true derivative with respect to log_probs; after a log_softmax it equals PyTorch's.

    >>> log_probs = lamina.log_softmax(lamina.randn(6, 2, 4), 2)   # 6 frames, 2 sequences, blank + 3 labels
    >>> loss = ctc_loss(log_probs, [[1, 2], [3, 3]], [6, 5], [2, 2], reduction="none")
    >>> loss.shape, bool((loss.numpy() > 0).all())
    (lamina.Size([2]), True)
    """
    check_reduction(reduction, "ctc_loss")
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = ops.unsqueeze(log_probs, 1)
    if log_probs.ndim != 3 or log_probs.dtype.kind != "f":
        raise ValueError(f"ctc_loss: log_probs must be float (T, N, C) or (T, C), got shape {log_probs.shape}")
    steps, batch, classes = log_probs.shape
    if not 0 <= blank < classes:
        raise ValueError(f"ctc_loss: blank {blank} is not a class of log_probs with {classes} classes")
    # targets and lengths are checked and laid out on the host (small); the op moves them to log_probs' device
    targets = np.asarray(targets._host_array() if isinstance(targets, Tensor) else targets)
    if unbatched and targets.ndim == 1:
        targets = targets[None]
    input_lengths = _lengths(np.atleast_1d(_host(input_lengths)) if unbatched else input_lengths, batch,
                             "input_lengths")
    target_lengths = _lengths(np.atleast_1d(_host(target_lengths)) if unbatched else target_lengths, batch,
                              "target_lengths")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"ctc_loss: targets must be integers, not {targets.dtype}")
    if input_lengths.min() < 1 or input_lengths.max() > steps:
        raise ValueError(f"ctc_loss: input_lengths must lie in [1, {steps}], got {input_lengths.tolist()}")
    if target_lengths.min() < 0:
        raise ValueError(f"ctc_loss: target_lengths must not be negative, got {target_lengths.tolist()}")
    if targets.ndim == 1:  # concatenated: cut it into rows
        if len(targets) != target_lengths.sum():
            raise ValueError(f"ctc_loss: 1-D targets have {len(targets)} labels but target_lengths sum to "
                             f"{target_lengths.sum()}")
        padded = np.full((batch, max(int(target_lengths.max()), 0)), blank, dtype=np.int64)
        for n, (start, size) in enumerate(zip(np.cumsum(target_lengths) - target_lengths, target_lengths)):
            padded[n, :size] = targets[start:start + size]
        targets = padded
    elif targets.ndim != 2 or targets.shape[0] != batch or targets.shape[1] < target_lengths.max():
        raise ValueError(f"ctc_loss: targets of shape {targets.shape} do not fit {batch} sequences with "
                         f"target_lengths up to {target_lengths.max()}")
    longer = np.flatnonzero(target_lengths > input_lengths)
    if len(longer) and not zero_infinity:
        n = int(longer[0])
        raise ValueError(f"ctc_loss: the target of sequence {n} ({target_lengths[n]} labels) is longer than its "
                         f"input ({input_lengths[n]} frames), so no alignment exists; pass zero_infinity=True "
                         "to give such sequences zero loss instead")
    labels = targets[:, :int(target_lengths.max()) if batch else 0].astype(np.int64)
    valid = np.arange(labels.shape[1])[None] < target_lengths[:, None]
    if valid.any() and ((labels[valid] < 0).any() or (labels[valid] >= classes).any() or
                        (labels[valid] == blank).any()):
        raise ValueError(f"ctc_loss: target labels must lie in [0, {classes}) and not be the blank ({blank})")
    extended = np.full((batch, 2 * labels.shape[1] + 1), blank, dtype=np.int64)
    extended[:, 1::2] = np.where(valid, labels, blank)
    loss = CTCLoss(extended, input_lengths, target_lengths, blank, zero_infinity)(log_probs)
    if reduction == "none":
        return ops.squeeze(loss, 0) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    divisor = np.maximum(target_lengths, 1).astype(log_probs.dtype)
    return (loss / wrap(get_array_module(loss.array).asarray(divisor))).mean()


# --- more activations (issue 12): compositions of ops, so gradients of every order come from those ----------
def hardtanh(input, min_val=-1.0, max_val=1.0):
    """input clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}")
    inside = (input > min_val) & (input < max_val)
    return ops.where(inside, input, ops.clamp(input, min_val, max_val).detach())


def relu6(input):
    return hardtanh(input, 0.0, 6.0)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold; computed without overflow."""
    z = input * beta
    smooth = (ops.relu(z) + ops.log1p(ops.exp(-ops.abs(z)))) / beta
    return ops.where(z > threshold, input, smooth)


def selu(input):
    return 1.0507009873554804934193349852946 * elu(input, 1.6732632423543772848170429916717)


def celu(input, alpha=1.0):
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ops.where(input > 0, input, alpha * (ops.exp(ops.minimum(input, 0.0) / alpha) - 1))


def mish(input):
    return input * ops.tanh(softplus(input))


def hardswish(input):
    return input * relu6(input + 3) / 6


def hardsigmoid(input):
    return relu6(input + 3) / 6


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -(ops.relu(-input) + ops.log1p(ops.exp(-ops.abs(input))))


def softmin(input, dim=None, dtype=None):
    return softmax(-input, _implicit_dim("softmin", input, dim), dtype)


def softsign(input):
    return input / (1 + ops.abs(input))


def tanhshrink(input):
    return input - ops.tanh(input)


def threshold(input, threshold, value):
    """input where input > threshold, else value."""
    return ops.where(input > threshold, input, value)


def glu(input, dim=-1):
    """a * sigmoid(b), where a and b are the two halves of input along dim."""
    if input.ndim == 0 or input.shape[dim] % 2:
        raise ValueError(f"glu: dim {dim} of input of shape {input.shape} must have an even size")
    a, b = ops.chunk(input, 2, dim)
    return a * ops.sigmoid(b)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), with one weight for all channels or one per channel (dim 1)."""
    if weight.ndim > 1 or (weight.numel() != 1 and (input.ndim < 2 or weight.numel() != input.shape[1])):
        raise ValueError(f"prelu: weight of shape {weight.shape} must hold 1 value or one per channel (dim 1) of "
                         f"input of shape {input.shape}")
    if weight.numel() != 1:
        weight = ops.reshape(weight, (1, -1) + (1,) * (input.ndim - 2))
    return ops.where(input > 0, input, weight * input)


# --- distances and normalization ----------------------------------------------------------------------------
def _p_norm(x, p, dim, keepdim):
    if p in (1, 2, math.inf, "fro"):
        return ops.norm(x, 2 if p == "fro" else p, dim, keepdim)
    return ops.sum(ops.abs(x) ** p, dim, keepdim) ** (1 / p)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input divided by its p-norm along dim (at least eps)."""
    return input / ops.clamp(_p_norm(input, p, dim, True), min=eps).expand_as(input)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """The cosine of the angle between x1 and x2 along dim (broadcast together); each norm at least eps."""
    shape = np.broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = ops.broadcast_to(x1, shape), ops.broadcast_to(x2, shape)
    n1 = ops.clamp(_p_norm(x1, 2, dim, True), min=eps)
    n2 = ops.clamp(_p_norm(x2, 2, dim, True), min=eps)
    return ops.sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps along the last dim."""
    return _p_norm(x1 - x2 + eps, p, -1, keepdim)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence with input as log-probabilities: target * (log(target) - input) summed as
    `reduction` says; "batchmean" divides the sum by the batch size (the true KL divergence per sample)."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce)
    target = as_operand(target, like=input)
    if log_target:
        pointwise = ops.exp(target) * (target - input)
    else:  # 0 * log(0) counts as 0
        positive = target > 0
        pointwise = ops.where(positive, target * (ops.log(ops.where(positive, target, 1.0)) - input), 0.0)
    if reduction == "batchmean":
        return pointwise.sum() / (input.shape[0] if input.ndim else 1)
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides by the number of elements, not the batch size; use "
                      "'batchmean' for the KL divergence as defined", UserWarning, stacklevel=2)
    return reduce_loss(pointwise, reduction, "kl_div")


# --- rearranging pixels, more pooling, transposed 1-D convolution ---------------------------------------------
def pixel_shuffle(input, upscale_factor):
    """(*, C * r * r, H, W) to (*, C, H * r, W * r): channels become sub-pixel positions."""
    r = int(upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: input of shape {input.shape} needs at least 3 dims and channels divisible "
                         f"by upscale_factor ** 2 = {r * r}")
    *lead, c, h, w = input.shape
    n = len(lead)
    x = ops.reshape(input, (*lead, c // (r * r), r, r, h, w))
    x = ops.permute(x, *range(n), n, n + 3, n + 1, n + 4, n + 2)
    return ops.reshape(x, (*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) to (*, C * r * r, H, W): the inverse of pixel_shuffle."""
    r = int(downscale_factor)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ValueError(f"pixel_unshuffle: input of shape {input.shape} needs height and width divisible by {r}")
    *lead, c, h, w = input.shape
    n = len(lead)
    x = ops.reshape(input, (*lead, c, h // r, r, w // r, r))
    x = ops.permute(x, *range(n), n, n + 2, n + 4, n + 1, n + 3)
    return ops.reshape(x, (*lead, c * r * r, h // r, w // r))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """The max over a grid of output_size cells, cut as adaptive_avg_pool2d cuts them."""
    conv_ops.check_input(input, 4, "adaptive_max_pool2d")
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices=True is not supported")
    out_h, out_w = conv_ops._pair(output_size, "output_size") if output_size is not None else input.shape[2:]
    h, w = input.shape[2:]
    if h % out_h == 0 and w % out_w == 0:
        return max_pool2d(input, (h // out_h, w // out_w))
    rows = []
    for i in range(out_h):
        top, bottom = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        cells = [ops.amax(input[:, :, top:bottom, (j * w) // out_w:-(-((j + 1) * w) // out_w)], (2, 3))
                 for j in range(out_w)]
        rows.append(ops.stack(cells, dim=-1))
    return ops.stack(rows, dim=-2)


def adaptive_avg_pool1d(input, output_size):
    conv_ops.check_input(input, 3, "adaptive_avg_pool1d")
    return ops.squeeze(adaptive_avg_pool2d(ops.unsqueeze(input, 2), (1, _single(output_size))), 2)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    conv_ops.check_input(input, 3, "conv_transpose1d")
    if weight.ndim != 3:
        raise ValueError(f"conv_transpose1d: weight must be (C_in, C_out/groups, k), got shape {weight.shape}")
    out = conv_transpose2d(ops.unsqueeze(input, 2), ops.unsqueeze(weight, 2), bias, (1, _single(stride)),
                           (0, _single(padding)), (0, _single(output_padding)), groups, (1, _single(dilation)))
    return ops.squeeze(out, 2)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Each value put back at the position max_pool2d(return_indices=True) took it from; zeros elsewhere."""
    conv_ops.check_input(input, 4, "max_unpool2d")
    if tuple(indices.shape) != input.shape:
        raise ValueError(f"max_unpool2d: indices of shape {indices.shape} must match input of shape {input.shape}")
    kernel = conv_ops._pair(kernel_size, "kernel_size")
    stride = conv_ops._pair(kernel_size if stride is None else stride, "stride")
    padding = conv_ops._pair(padding, "padding")
    if output_size is None:
        out_hw = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(input.shape[2:], stride, padding, kernel))
    else:
        out_hw = tuple(output_size)[-2:]
    n, c = input.shape[:2]
    flat = indices.array.reshape(n, c, -1)
    if flat.size and (flat.min() < 0 or flat.max() >= out_hw[0] * out_hw[1]):
        raise ValueError(f"max_unpool2d: indices fall outside the output of size {out_hw}")
    out = ops.shape.ScatterAdd(2, flat, (n, c, out_hw[0] * out_hw[1]))(ops.reshape(input, (n, c, -1)))
    return ops.reshape(out, (n, c, *out_hw))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalize each channel of each sample over its spatial dims; running statistics (averaged over the batch)
    are updated when given and used instead when use_input_stats is False."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: input must be (N, C, ...) with spatial dims, got shape {input.shape}")
    axes = tuple(range(2, input.ndim))
    shape = (1, -1) + (1,) * (input.ndim - 2)
    if use_input_stats:
        mean = input.mean(axes, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdim=True)
        if running_mean is not None:
            count = math.prod(input.shape[2:])
            with no_grad():
                running_mean.array *= 1 - momentum
                running_mean.array += momentum * mean.array.mean(0).reshape(-1)
                running_var.array *= 1 - momentum
                running_var.array += momentum * var.array.mean(0).reshape(-1) * (count / max(count - 1, 1))
    else:
        centered = input - ops.reshape(running_mean, shape)
        var = ops.reshape(running_var, shape)
    out = centered * (var + eps) ** -0.5
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


# --- attention ----------------------------------------------------------------------------------------------
def _additive(mask, dtype, may_attend, where, shape, like):
    """A mask as something to add to the scores: a constant array for bool masks, the tensor itself for floats.
    A mask given as an array or a list lands on the device of the tensor `like`."""
    if mask is None:
        return None
    data = mask.array if isinstance(mask, Tensor) else get_array_module(like.array).asarray(mask)
    try:
        np.broadcast_shapes(data.shape, shape)
    except ValueError:
        raise ValueError(f"{where} of shape {tuple(data.shape)} does not fit attention scores of shape {shape}") \
            from None
    if data.dtype == np.bool_:
        xp = get_array_module(data)
        blocked = data if not may_attend else ~data
        return wrap(xp.where(blocked, xp.asarray(-np.inf, dtype=dtype), xp.asarray(0, dtype=dtype)))
    if data.dtype.kind != "f":
        raise TypeError(f"{where} must be a bool or float mask, not {data.dtype}")
    return as_operand(mask).to(dtype) if data.dtype != dtype else as_operand(mask)


def _attend(q, k, v, bias, dropout_p, scale):
    """softmax(q k^T * scale + bias) v and the weights, on (..., L, E), (..., S, E), (..., S, Ev)."""
    scores = ops.matmul(q * scale, ops.transpose(k, -2, -1))
    if bias is not None:
        scores = scores + bias
    weights = ops.softmax(scores, -1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return ops.matmul(weights, v), weights


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(query key^T / sqrt(E) + mask) value, as torch.nn.functional.scaled_dot_product_attention.

    query (..., L, E), key (..., S, E), value (..., S, Ev). A bool attn_mask is True where attention is
    allowed; a float one is added to the scores; is_causal lets query i see keys 0..i only.
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} needs at least 2 dims, got shape {t.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
                         f"{value.shape} do not fit (need query and key to share E, key and value to share S)")
    length, source = query.shape[-2], key.shape[-2]
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    if is_causal:
        xp = get_array_module(query.array)
        attn_mask = xp.tril(xp.ones((length, source), dtype=bool))
    scores_shape = (*np.broadcast_shapes(query.shape[:-2], key.shape[:-2]), length, source)
    bias = _additive(attn_mask, query.dtype, True, "scaled_dot_product_attention: attn_mask", scores_shape,
                     query)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, bias, dropout_p, scale)[0]


__all__ = [
    "adaptive_avg_pool1d", "adaptive_max_pool2d", "celu", "conv_transpose1d", "cosine_similarity", "glu", "hardsigmoid",
    "hardswish", "hardtanh", "instance_norm", "kl_div", "logsigmoid", "max_unpool2d", "mish", "normalize",
    "pairwise_distance", "pixel_shuffle", "pixel_unshuffle", "prelu", "relu6", "selu", "softmin", "softplus",
    "softsign", "tanhshrink", "threshold",
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv1d", "conv2d", "conv_transpose2d", "cross_entropy", "ctc_loss", "dropout",
    "dropout2d", "elu", "embedding", "gelu", "group_norm", "huber_loss", "interpolate", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool1d", "max_pool2d", "mse_loss", "nll_loss", "one_hot", "pad",
    "relu", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "tanh",
]
