"""The functional forms of layers and losses, named as in torch.nn.functional."""

import math

import numpy as np

from lamina import ops
from lamina.autograd import _make, as_tensor
from lamina.backend import generator, get_array_module
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
    scale = xp.asarray(keep, dtype=input.dtype) * (1 / (1 - p))
    return input * _make(scale)


def one_hot(tensor, num_classes=-1):
    labels = as_tensor(tensor).data
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, not {labels.dtype}")
    if num_classes < 0:
        num_classes = int(labels.max()) + 1
    return _make(np.eye(num_classes, dtype=np.int64)[labels])


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
        out = ops.where(_make((indices == padding_idx)[..., None]), out.detach(), out)
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
    loss = -picked * _make(sample_w)
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
    smooth = smooth * _make(valid.astype(input.dtype))
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


__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "elu", "embedding",
    "gelu", "huber_loss", "l1_loss", "leaky_relu", "linear", "log_softmax", "mse_loss", "nll_loss", "one_hot",
    "pad", "relu", "sigmoid", "silu", "softmax", "tanh",
]
