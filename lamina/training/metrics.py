"""Metrics: plain functions of (y_true, y_pred) arrays, and streaming forms that fit() accumulates.

Predictions may be class scores of shape (N, C), from which the class is the
argmax, or one score per sample for binary tasks, thresholded at `threshold`
(0 for logits, 0.5 for probabilities).

The arrays may live on a GPU (CuPy): the metrics compute there, and only the
result, a Python float, comes back. Counts of a confusion matrix are small and
are reduced on the host.
"""

import numpy as np

from lamina.backend import CPU, get_array_module, is_array, to_device


def _array(values):
    return values if is_array(values) else np.asarray(values)


def _host(values):
    return to_device(values, CPU) if is_array(values) else np.asarray(values)


def _classes(y_pred, threshold=0.0):
    y_pred = _array(y_pred)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
        return y_pred.argmax(axis=-1)
    return (y_pred.reshape(len(y_pred), -1)[:, 0] > threshold).astype(np.int64)


def _labels(y_true):
    y_true = _array(y_true)
    if y_true.ndim == 2 and y_true.shape[1] > 1:  # one-hot or class probabilities
        return y_true.argmax(axis=1)
    return y_true.reshape(len(y_true)).astype(np.int64)


def accuracy(y_true, y_pred, threshold=0.0):
    return float((_classes(y_pred, threshold) == _labels(y_true)).mean())


def top_k_accuracy(y_true, y_pred, k=5):
    y_pred = _array(y_pred)
    top = get_array_module(y_pred).argsort(y_pred, axis=1)[:, -k:]
    return float((top == _labels(y_true)[:, None]).any(axis=1).mean())


def confusion_matrix(y_true, y_pred, num_classes=None, threshold=0.0):
    """counts[i, j]: samples of true class i predicted as class j."""
    true, pred = _labels(y_true), _classes(y_pred, threshold)
    if num_classes is None:
        num_classes = int(max(true.max(), pred.max())) + 1 if true.size else 1
    xp = get_array_module(true)
    return xp.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def _per_class(counts):
    counts = _host(counts)
    tp = np.diag(counts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(counts.sum(0) > 0, tp / counts.sum(0), 0.0)
        recall = np.where(counts.sum(1) > 0, tp / counts.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def precision(y_true, y_pred, num_classes=None, threshold=0.0):
    """Macro-averaged precision over the classes."""
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes, threshold))[0].mean())


def recall(y_true, y_pred, num_classes=None, threshold=0.0):
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes, threshold))[1].mean())


def f1(y_true, y_pred, num_classes=None, threshold=0.0):
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes, threshold))[2].mean())


def _difference(y_true, y_pred):
    y_pred, y_true = _array(y_pred), _array(y_true)
    return y_pred.astype(np.float64) - y_true.astype(np.float64).reshape(y_pred.shape)


def mae(y_true, y_pred):
    return float(abs(_difference(y_true, y_pred)).mean())


def mse(y_true, y_pred):
    return float((_difference(y_true, y_pred) ** 2).mean())


# --- streaming forms, accumulated batch by batch in fit/evaluate ----------------------------------------
class Metric:
    name = None

    def reset(self):
        raise NotImplementedError

    def update(self, y_true, y_pred):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError


class _Mean(Metric):
    """Sample-weighted mean of a per-batch value."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, y_true, y_pred):
        n = len(y_pred)
        self.total += self.fn(y_true, y_pred) * n
        self.count += n

    def result(self):
        return self.total / max(self.count, 1)


class _FromConfusion(Metric):
    """Precision, recall and F1 over the whole epoch, not averaged over batches."""

    def __init__(self, name, index, threshold):
        self.name, self.index, self.threshold = name, index, threshold
        self.reset()

    def reset(self):
        self.counts = None

    def update(self, y_true, y_pred):
        shape = _array(y_pred).shape
        classes = shape[-1] if len(shape) >= 2 and shape[-1] > 1 else 2
        batch = confusion_matrix(y_true, y_pred, classes, self.threshold)
        self.counts = batch if self.counts is None else self.counts + batch

    def result(self):
        return float(_per_class(self.counts)[self.index].mean()) if self.counts is not None else 0.0


BUILT_IN = (_Mean, _FromConfusion)  # metrics that take arrays on any device (users' metrics get NumPy's)


def get(name, threshold=0.0):
    """A streaming metric by name: accuracy, top_k_accuracy (k=5), precision, recall, f1, mae, mse."""
    if isinstance(name, Metric):  # a metric of the user's, started afresh for each epoch
        name.reset()
        return name
    factories = {
        "accuracy": lambda: _Mean("accuracy", lambda t, p: accuracy(t, p, threshold)),
        "acc": lambda: _Mean("accuracy", lambda t, p: accuracy(t, p, threshold)),
        "top_k_accuracy": lambda: _Mean("top_k_accuracy", top_k_accuracy),
        "precision": lambda: _FromConfusion("precision", 0, threshold),
        "recall": lambda: _FromConfusion("recall", 1, threshold),
        "f1": lambda: _FromConfusion("f1", 2, threshold),
        "mae": lambda: _Mean("mae", mae),
        "mse": lambda: _Mean("mse", mse),
    }
    if name not in factories:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(sorted(factories))}")
    return factories[name]()
