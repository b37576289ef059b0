"""compile / fit / evaluate / predict: the training process of the essay, Keras-shaped, for any Module.

Each step: predictions from the model, a loss scoring them against the
targets, backpropagation of the loss, and the optimizer's update. Repeat over
the batches of an epoch, and over epochs.
"""

import signal
import threading

import numpy as np

from lamina import nn, optim
from lamina.autograd import Tensor, no_grad
from lamina.data import DataLoader, TensorDataset
from lamina.nn import functional as F
from lamina.training import metrics as metric_lib
from lamina.training.callbacks import CallbackList, History, ProgressBar

LOSSES = {
    "cross_entropy": F.cross_entropy,
    "categorical_crossentropy": F.cross_entropy,
    "sparse_categorical_crossentropy": F.cross_entropy,
    "nll": F.nll_loss,
    "nll_loss": F.nll_loss,
    "mse": F.mse_loss,
    "mse_loss": F.mse_loss,
    "mae": F.l1_loss,
    "l1": F.l1_loss,
    "l1_loss": F.l1_loss,
    "huber": F.huber_loss,
    "huber_loss": F.huber_loss,
    "bce": F.binary_cross_entropy,
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_crossentropy": F.binary_cross_entropy,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "adagrad": optim.Adagrad}


class TrainingError(RuntimeError):
    pass


def compile_model(model, optimizer="adam", loss="cross_entropy", metrics=None):
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"compile: unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        optimizer = OPTIMIZERS[optimizer.lower()](model.parameters())
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"compile: unknown loss {loss!r}; choose from {', '.join(sorted(LOSSES))}")
        loss_name, loss = loss, LOSSES[loss]
    else:
        loss_name = type(loss).__name__ if not hasattr(loss, "__name__") else loss.__name__
    # Binary scores are logits (threshold 0) unless the loss takes probabilities.
    threshold = 0.5 if loss_name in ("bce", "binary_cross_entropy", "binary_crossentropy", "BCELoss") else 0.0
    model.optimizer = optimizer
    model.loss_fn = loss
    model.loss_name = loss_name
    model.metric_names = list(metrics or [])
    model.metric_threshold = threshold
    model.stop_training = False


def _require_compiled(model, what):
    if getattr(model, "optimizer", None) is None or getattr(model, "loss_fn", None) is None:
        raise TrainingError(f"{what}: call model.compile(optimizer=..., loss=...) first")


def _as_array(x, name):
    array = x.data if isinstance(x, Tensor) else np.asarray(x)
    if array.dtype == np.float64:
        array = array.astype(np.float32)  # inputs follow lamina's float32 default, as Keras casts to floatx
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, not {array.dtype}")
    return array


def _loader(x, y, batch_size, shuffle, what):
    if isinstance(x, DataLoader):
        if y is not None:
            raise ValueError(f"{what}: pass y inside the DataLoader, not separately")
        return x
    if y is None:
        raise ValueError(f"{what}: targets y are missing")
    x, y = _as_array(x, "x"), _as_array(y, "y")
    if len(x) != len(y):
        raise ValueError(f"{what}: x has {len(x)} samples (shape {x.shape}) but y has {len(y)} (shape {y.shape})")
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


_FLOAT_TARGET_LOSSES = (F.mse_loss, F.l1_loss, F.huber_loss, F.binary_cross_entropy,
                        F.binary_cross_entropy_with_logits)
_FLOAT_TARGET_MODULES = (nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)


def _targets_for(loss_fn, y, output):
    """Regression and binary losses get float targets shaped like the output; class indices stay integers."""
    if loss_fn in _FLOAT_TARGET_LOSSES or isinstance(loss_fn, _FLOAT_TARGET_MODULES):
        if y.dtype != output.dtype:
            y = y.to(output.dtype)
        if y.shape != output.shape and y.data.size == output.data.size:
            y = y.reshape(output.shape)  # (N,) targets for (N, 1) outputs
    return y


class _Interrupt:
    """Turn Ctrl-C during fit into a request to stop after the current batch."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _distributed(model):
    """lamina.distributed when the model is wrapped for data-parallel training over several ranks."""
    if not getattr(model, "wraps_module", False):
        return None
    from lamina import distributed  # sits above training; imported only for wrapped models

    return distributed if distributed.world_size() > 1 else None


def _run_epoch(model, loader, callbacks, stop, dist=None):
    """One pass over the training batches; returns (logs, completed)."""
    loss_sum, count = 0.0, 0
    streaming = [metric_lib.get(m, model.metric_threshold) for m in model.metric_names]
    logs = {}
    model.train()
    for batch, (xb, yb) in enumerate(loader):
        callbacks.on_train_batch_begin(batch)
        output = model(xb)
        loss = model.loss_fn(output, _targets_for(model.loss_fn, yb, output))
        model.optimizer.zero_grad()
        loss.backward()
        model.optimizer.step()
        n = len(xb)
        loss_sum += loss.item() * n
        count += n
        logs = {"loss": loss_sum / count}
        for m in streaming:
            m.update(yb.data, output.data)
            logs[m.name] = m.result()
        callbacks.on_train_batch_end(batch, logs)
        stopping = model.stop_training or stop.requested
        if dist is not None:  # every rank stops together, or the others would wait for it forever
            stopping = dist.all_reduce(np.array([float(stopping)]), "max")[0] > 0
        if stopping:
            model.stop_training = True
            return logs, False
    return logs, True


def fit(model, x, y=None, epochs=1, batch_size=32, validation_data=None, validation_split=0.0, shuffle=True,
        callbacks=None, verbose=1, initial_epoch=0):
    """Train for `epochs` epochs; returns the History (also kept as model.history)."""
    _require_compiled(model, "fit")
    if not isinstance(x, DataLoader) and validation_split:
        if validation_data is not None:
            raise ValueError("fit: give validation_data or validation_split, not both")
        x_all, y_all = _as_array(x, "x"), _as_array(y, "y")
        cut = int(len(x_all) * (1 - validation_split))
        x, y, validation_data = x_all[:cut], y_all[:cut], (x_all[cut:], y_all[cut:])
    dist = _distributed(model)
    if dist is not None and not isinstance(x, DataLoader):  # each rank trains on its own shard
        x, y = _as_array(x, "x"), _as_array(y, "y")
        loader = DataLoader(TensorDataset(x, y), batch_size=batch_size,
                            sampler=dist.DistributedSampler(len(x), shuffle=shuffle))
    else:
        loader = _loader(x, y, batch_size, shuffle, "fit")
    history = History()
    previous = getattr(model, "history", None)
    if initial_epoch and previous is not None:  # resuming: keep what was already learned
        history.epoch, history.history = list(previous.epoch), {k: list(v) for k, v in previous.history.items()}
    model.history = history
    callbacks = list(callbacks or [])
    if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks.insert(0, ProgressBar(verbose))
    if dist is not None and not dist.is_main():  # output, logs and checkpoints come from rank 0 only
        callbacks = [cb for cb in callbacks if not cb.main_process_only]
    # History first: a checkpoint written at the end of an epoch then includes that epoch.
    callback_list = CallbackList([history, *callbacks], model,
                                 {"epochs": epochs, "steps": len(loader), "verbose": verbose})
    model.stop_training = False
    callback_list.on_train_begin()
    with _Interrupt() as stop:
        for epoch in range(initial_epoch, epochs):
            if hasattr(getattr(loader, "sampler", None), "set_epoch"):
                loader.sampler.set_epoch(epoch)
            callback_list.on_epoch_begin(epoch)
            logs, completed = _run_epoch(model, loader, callback_list, stop, dist)
            if dist is not None and logs:  # the epoch's loss and metrics, averaged over the ranks' shards
                averaged = dist.all_reduce(np.array([logs[k] for k in sorted(logs)], dtype=np.float64), "mean")
                logs = dict(zip(sorted(logs), averaged.tolist()))
            if not completed:
                # A partial epoch is recorded, but epoch-end callbacks (checkpoints) never see it.
                history.interrupted = True
                history.epoch.append(epoch)
                for key, value in logs.items():
                    history.history.setdefault(key, []).append(value)
                if stop.requested and (dist is None or dist.is_main()):
                    print(f"\nInterrupted: stopped after batch of epoch {epoch + 1}; weights kept.")
                break
            if validation_data is not None:
                val = evaluate(model, *validation_data, batch_size=max(batch_size, 256), verbose=0)
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["lr"] = model.optimizer.param_groups[0]["lr"]
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    callback_list.on_train_end()
    return history


@no_grad()
def evaluate(model, x, y=None, batch_size=256, verbose=0):
    """Loss and metrics over a dataset, in eval mode; returns a dict."""
    _require_compiled(model, "evaluate")
    loader = _loader(x, y, batch_size, False, "evaluate")
    streaming = [metric_lib.get(m, model.metric_threshold) for m in model.metric_names]
    was_training = model.training
    model.eval()
    loss_sum, count = 0.0, 0
    try:
        for xb, yb in loader:
            output = model(xb)
            loss = model.loss_fn(output, _targets_for(model.loss_fn, yb, output))
            loss_sum += loss.item() * len(xb)
            count += len(xb)
            for m in streaming:
                m.update(yb.data, output.data)
    finally:
        model.train(was_training)
    results = {"loss": loss_sum / max(count, 1)}
    results.update({m.name: m.result() for m in streaming})
    if verbose:
        print("  ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return results


@no_grad()
def predict(model, x, batch_size=256):
    """The model's outputs for every sample, as one NumPy array, computed in eval mode."""
    if isinstance(x, DataLoader):
        batches = (b[0] for b in x)
    else:
        array = _as_array(x, "x")
        batches = (Tensor(array[i:i + batch_size]) for i in range(0, len(array), batch_size))
    was_training = model.training
    model.eval()
    try:
        outputs = [model(xb).data for xb in batches]
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
