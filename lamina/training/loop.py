"""compile / fit / evaluate / predict: the training process of the essay, Keras-shaped.

Each step: predictions from the model, a loss scoring them against the
targets, backpropagation of the loss, and the optimizer's update. Repeat over
the batches of an epoch, and over epochs.

Three small pieces, as in Keras: `make_loader` adapts arrays, tensors or a
DataLoader into batches; `Trainer.train_step` / `test_step` do one batch (a
model that defines its own `train_step(batch)` is trained with that instead, for
GANs, VAEs or any custom loss); `Trainer.fit` is the loop over epochs and batches.
Where the work is shared between processes, the model hands the loop a strategy
(lamina.distributed's DistributedDataParallel does); the loop never imports it.
"""

import math
import numbers
import signal
import threading
import warnings

import numpy as np

from lamina import nn, optim
from lamina.autograd import Tensor, no_grad, wrap
from lamina.backend import CPU, device_of, get_array_module, is_array, to_device
from lamina.data import DataLoader, TensorDataset
from lamina.errors import LaminaError
from lamina.nn import functional as F
from lamina.nn.module import register_trainer
from lamina.training import metrics as metric_lib
from lamina.training.callbacks import CallbackList, History, ProgressBar
from lamina.training.graphs import GraphedStep

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
_PROBABILITY_LOSSES = ("bce", "binary_cross_entropy", "binary_crossentropy", "BCELoss")
_FLOAT_TARGET_LOSSES = (F.mse_loss, F.l1_loss, F.huber_loss, F.binary_cross_entropy,
                        F.binary_cross_entropy_with_logits)
_FLOAT_TARGET_MODULES = (nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)
_PROBABILITY_TARGET_LOSSES = (F.binary_cross_entropy, F.binary_cross_entropy_with_logits)
_PROBABILITY_TARGET_MODULES = (nn.BCELoss, nn.BCEWithLogitsLoss)


class TrainingError(LaminaError, RuntimeError):
    pass


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; `history` holds the epochs completed before it."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history


def _check_positive_int(value, name, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what}: {name} must be a positive whole number, not {value!r}")


class SingleProcess:
    """How fit shares its work when there is one process: it doesn't.

    A model trained over several processes offers a `strategy` with the same
    four answers (lamina.distributed.DataParallel): which samples this process
    trains on, the logs averaged over processes, a stop that every process
    agrees on, and whether this process writes output.
    """

    is_main = True

    def sampler(self, num_samples, shuffle):
        return None  # the DataLoader shuffles by itself

    def reduce_logs(self, logs):
        return logs

    def agree_to_stop(self, stopping):
        return stopping


def model_device(model):
    """The device a model computes on: that of its first parameter (None for a model without parameters,
    which computes wherever its inputs are)."""
    first = next(model.parameters(), None)
    return None if first is None else device_of(first.array)


def to_model_device(data, where):
    """A batch (a tensor, an array, or tuples, lists and dicts of them) moved to device `where`; what is
    there already, and anything not an array, stays as it is."""
    if where is None:
        return data
    if isinstance(data, Tensor):
        return data if device_of(data.array) is where else data.to(where)  # devices are one object each
    if is_array(data):
        return wrap(to_device(data, where))
    if isinstance(data, (tuple, list)):
        return type(data)(to_model_device(d, where) for d in data)
    if isinstance(data, dict):
        return {k: to_model_device(v, where) for k, v in data.items()}
    return data


def _as_array(x, name):
    # data for a DataLoader lives on the host (fit moves each batch to the model's device)
    array = x._host_array() if isinstance(x, Tensor) else to_device(x, CPU) if is_array(x) else np.asarray(x)
    if array.dtype == np.float64:
        array = array.astype(np.float32)  # inputs follow lamina's float32 default, as Keras casts to floatx
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, not {array.dtype}")
    if name == "y" and array.dtype.kind == "b":
        raise TypeError("y holds booleans: give class indices as integers (0, 1, ...) or binary targets as floats")
    return array


def make_loader(x, y, batch_size, shuffle, what, sampler=None):
    """Batches from arrays, tensors or a DataLoader (the data adapter)."""
    if isinstance(x, DataLoader):
        if y is not None:
            raise ValueError(f"{what}: pass y inside the DataLoader, not separately")
        return x
    if y is None:
        raise ValueError(f"{what}: targets y are missing")
    x, y = _as_array(x, "x"), _as_array(y, "y")
    if len(x) != len(y):
        raise ValueError(f"{what}: x has {len(x)} samples (shape {x.shape}) but y has {len(y)} (shape {y.shape})")
    if len(x) == 0:
        raise ValueError(f"{what}: the data is empty (x has shape {x.shape})")
    sampler = sampler(len(x), shuffle) if sampler is not None else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler)


def _split_validation(x, y, validation_data, validation_split):
    if not (validation_split == 0 or 0 < validation_split < 1):
        raise ValueError(f"fit: validation_split must be a fraction between 0 and 1, not {validation_split!r}")
    if isinstance(x, DataLoader) or not validation_split:
        return x, y, validation_data
    if validation_data is not None:
        raise ValueError("fit: give validation_data or validation_split, not both")
    x_all, y_all = _as_array(x, "x"), _as_array(y, "y")
    cut = int(len(x_all) * (1 - validation_split))
    return x_all[:cut], y_all[:cut], (x_all[cut:], y_all[cut:])


def _targets_for(loss_fn, y, output):
    """Regression and binary losses get float targets shaped like the output; class indices stay integers.

    Targets that a loss reads as probabilities (binary cross-entropy, soft class targets) must lie in
    [0, 1]: the functions accept anything, as PyTorch's do, but fit does not train on such nonsense. The
    check reads the values, so it runs here for host targets only: fit and evaluate check each batch on the
    host before moving it to a GPU (_check_host_targets), which keeps a GPU step free of host round trips.
    """
    if loss_fn in _FLOAT_TARGET_LOSSES or isinstance(loss_fn, _FLOAT_TARGET_MODULES):
        if y.dtype != output.dtype:
            y = y.to(output.dtype)
        if y.shape != output.shape and y.array.size == output.array.size:
            y = y.reshape(output.shape)  # (N,) targets for (N, 1) outputs
    if type(y.array) is np.ndarray and _reads_probabilities(loss_fn, y.array.dtype):
        _check_probabilities(y.array)
    return y


def _reads_probabilities(loss_fn, target_dtype):
    """Whether the loss reads its targets as probabilities: binary cross-entropy, or soft class targets."""
    soft_classes = target_dtype.kind == "f" and (loss_fn is F.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss))
    return soft_classes or loss_fn in _PROBABILITY_TARGET_LOSSES or isinstance(loss_fn, _PROBABILITY_TARGET_MODULES)


def _check_probabilities(y):
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"fit: the loss reads the targets as probabilities in [0, 1], but they range over "
                         f"[{float(y.min()):g}, {float(y.max()):g}]")


def _check_host_targets(loss_fn, data, where):
    """The probability check of _targets_for, on a host batch (x, y) about to move to a GPU."""
    if where is None or where.type == "cpu" or not isinstance(data, (tuple, list)) or len(data) != 2:
        return
    y = data[1].array if isinstance(data[1], Tensor) else data[1]
    if type(y) is np.ndarray and _reads_probabilities(loss_fn, y.dtype):
        _check_probabilities(y)


class _Interrupt:
    """Turn Ctrl-C during fit into a request to stop after the current batch."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = None
        # a process that ignores SIGINT (a background job) goes on ignoring it
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not \
                signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Everything compile() chose and fit() keeps: optimizer, loss, metrics, history, schedule, stop flag.

    `model.compile(...)` makes one and keeps it as `model.trainer`; the model's
    Keras-named attributes (`model.optimizer`, `model.history`,
    `model.stop_training`, `model.scheduler`) read and write it.
    """

    def __init__(self, model, optimizer="adam", loss="cross_entropy", metrics=None):
        if isinstance(optimizer, str):
            try:
                optimizer = optim.create(optimizer, model.parameters())
            except ValueError as e:
                raise ValueError(f"compile: {e}") from None
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"compile: unknown loss {loss!r}; choose from {', '.join(sorted(LOSSES))}")
            self.loss_name, loss = loss, LOSSES[loss]
        else:
            self.loss_name = getattr(loss, "__name__", type(loss).__name__)
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss
        self.metric_names = list(metrics or [])
        # Binary scores are logits (threshold 0) unless the loss takes probabilities.
        self.metric_threshold = 0.5 if self.loss_name in _PROBABILITY_LOSSES else 0.0
        self.history = self.scheduler = self.graphed = None
        self._where = None  # the model's device while fit or evaluate loops over batches
        self.stop_training = False
        self.strategy = getattr(model, "strategy", None) or SingleProcess()
        self.reset_metrics()

    # --- one batch ----------------------------------------------------------------------------
    def reset_metrics(self):
        self._loss_sum, self._count = 0.0, 0
        self._streaming = [metric_lib.get(m, self.metric_threshold) for m in self.metric_names]

    def update_metrics(self, loss, y, output):
        """Add one batch to the running loss and metrics; returns the logs so far."""
        n = len(y)
        self._loss_sum += loss.item() * n
        self._count += n
        logs = {"loss": self._loss_sum / self._count}
        host = None
        for m in self._streaming:
            if isinstance(m, metric_lib.BUILT_IN):  # lamina's metrics compute on the arrays' device
                m.update(y.array, output.array)
            else:  # a user's metric gets NumPy arrays, wherever the model runs
                host = host or (y._host_array(), output._host_array())
                m.update(*host)
            logs[m.name] = m.result()
        return logs

    def _device(self):
        """The model's device: found once per loop by fit and evaluate, else asked of the model."""
        return self._where if self._where is not None else model_device(self.model)

    def compute_loss(self, batch):
        x, y = to_model_device(batch, self._device())
        output = self.model(x)
        return self.loss_fn(output, _targets_for(self.loss_fn, y, output)), y, output

    def train_step(self, batch):
        """Predict, score, backpropagate, update; returns the logs so far this epoch."""
        if self.graphed is not None:  # fit(cuda_graph=True): forward and backward replayed, the update eager
            x, y = to_model_device(batch, self._device())
            loss = self.graphed(x, y)
            self.optimizer.step()
            return self.update_metrics(loss, y, self.graphed.output)
        loss, y, output = self.compute_loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return self.update_metrics(loss, y, output)

    def test_step(self, batch):
        loss, y, output = self.compute_loss(batch)
        return self.update_metrics(loss, y, output)

    # --- the loops ----------------------------------------------------------------------------
    def _epoch(self, epoch, loader, callbacks, interrupt):
        """One pass over the training batches; returns (logs, completed)."""
        self.reset_metrics()
        self.model.train()
        logs = {}
        where = self._where = model_device(self.model)
        try:
            for batch, data in enumerate(loader):
                callbacks.on_train_batch_begin(batch)
                _check_host_targets(self.loss_fn, data, where)
                logs = self.model.train_step(to_model_device(data, where))
                self._check_finite(logs, epoch, batch)
                callbacks.on_train_batch_end(batch, logs)
                # every process stops together, or the others would wait for it forever
                if self.strategy.agree_to_stop(self.stop_training or interrupt.requested):
                    self.stop_training = True
                    return self.strategy.reduce_logs(logs), False
        finally:
            self._where = None
        return self.strategy.reduce_logs(logs), True

    def _check_finite(self, logs, epoch, batch):
        loss = logs.get("loss")
        if loss is None or math.isfinite(loss):
            return
        message = (f"fit: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}. Look for NaN or "
                   "infinite inputs, or lower the learning rate")
        if self.stop_on_nan:
            raise NonFiniteLossError(message + "; checkpoints written so far hold the last finite weights. "
                                     "(fit(..., stop_on_nan=False) trains on with a warning.)", self.history)
        if not self._warned_nan:
            self._warned_nan = True
            warnings.warn(message + "; training goes on because stop_on_nan=False", RuntimeWarning, stacklevel=4)

    def fit(self, x, y=None, epochs=1, batch_size=32, validation_data=None, validation_split=0.0, shuffle=True,
            callbacks=None, verbose=1, initial_epoch=0, stop_on_nan=True, cuda_graph=False):
        """Train for `epochs` epochs; returns the History (also kept as model.history).

        A NaN or infinite loss stops training with NonFiniteLossError naming the epoch and batch, unless
        stop_on_nan=False, which warns once and trains on. cuda_graph=True (a model on a GPU) records each
        batch shape's forward and backward once as a CUDA graph and replays it (lamina.training.GraphedStep):
        far fewer launches for small models; the model must not draw random numbers (dropout) or read GPU
        values on the host while it runs, which gives one clear error.
        """
        _check_positive_int(epochs, "epochs", "fit")
        _check_positive_int(batch_size, "batch_size", "fit")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) or initial_epoch < 0:
            raise ValueError(f"fit: initial_epoch must be a whole number >= 0, not {initial_epoch!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1 or 2, not {verbose!r}")
        self.stop_on_nan, self._warned_nan = stop_on_nan, False
        self.graphed = None
        if cuda_graph:
            where = model_device(self.model)
            if where is None or where.type != "cuda":
                raise ValueError(f"fit: cuda_graph=True needs a model with parameters on a GPU (model.to('cuda')); "
                                 f"this one's are on {where or 'no device (it has none)'}")
            self.graphed = GraphedStep(self.model, lambda out, y: self.loss_fn(out, _targets_for(self.loss_fn, y, out)))
        x, y, validation_data = _split_validation(x, y, validation_data, validation_split)
        loader = make_loader(x, y, batch_size, shuffle, "fit", self.strategy.sampler)
        history = self._start_history(initial_epoch)
        callbacks = self._callbacks(callbacks, verbose, history, {"epochs": epochs, "steps": len(loader),
                                                                   "verbose": verbose})
        self.stop_training = False
        callbacks.on_train_begin()
        with _Interrupt() as interrupt:
            for epoch in range(initial_epoch, epochs):
                if hasattr(getattr(loader, "sampler", None), "set_epoch"):
                    loader.sampler.set_epoch(epoch)
                callbacks.on_epoch_begin(epoch)
                logs, completed = self._epoch(epoch, loader, callbacks, interrupt)
                if not completed:  # a partial epoch is recorded, but epoch-end callbacks (checkpoints) never see it
                    history.record_interrupted(epoch, logs)
                    if interrupt.requested and self.strategy.is_main:
                        print(f"\nInterrupted: stopped after a batch of epoch {epoch + 1}.")
                    break
                if validation_data is not None:
                    val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["lr"] = self.optimizer.param_groups[0]["lr"]
                callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        callbacks.on_train_end()
        return history

    def _start_history(self, initial_epoch):
        history = History()
        if initial_epoch and self.history is not None:  # resuming: keep what was already learned
            history.epoch, history.history = list(self.history.epoch), {k: list(v) for k, v in
                                                                        self.history.history.items()}
        self.history = history
        return history

    def _callbacks(self, callbacks, verbose, history, params):
        callbacks = list(callbacks or [])
        if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.insert(0, ProgressBar(verbose))
        if not self.strategy.is_main:  # output, logs and checkpoints come from the main process only
            callbacks = [cb for cb in callbacks if not cb.main_process_only]
        # History first: a checkpoint written at the end of an epoch then includes that epoch.
        return CallbackList([history, *callbacks], self.model, params)

    @no_grad()
    def evaluate(self, x, y=None, batch_size=256, verbose=0):
        """Loss and metrics over a dataset, in eval mode; returns a dict."""
        _check_positive_int(batch_size, "batch_size", "evaluate")
        loader = make_loader(x, y, batch_size, False, "evaluate")
        if len(loader) == 0:
            raise ValueError("evaluate: the data is empty")
        was_training = self.model.training
        self.model.eval()
        self.reset_metrics()
        results = {"loss": 0.0, **{m.name: m.result() for m in self._streaming}}
        where = self._where = model_device(self.model)
        try:
            for data in loader:
                _check_host_targets(self.loss_fn, data, where)
                results = self.model.test_step(to_model_device(data, where))
        finally:
            self.model.train(was_training)
            self._where = None
        if verbose:
            print("  ".join(f"{k} {v:.4f}" for k, v in results.items()))
        return results


@no_grad()
def predict(model, x, batch_size=256):
    """The model's outputs for every sample, as one NumPy array (on the host, wherever the model computes),
    computed in eval mode."""
    if isinstance(x, DataLoader):
        batches = (b[0] for b in x)
    else:
        array = _as_array(x, "x")
        batches = (wrap(array[i:i + batch_size]) for i in range(0, len(array), batch_size))
    was_training = model.training
    where = model_device(model)
    model.eval()
    try:
        outputs = [model(to_model_device(xb, where)).array for xb in batches]
    finally:
        model.train(was_training)
    if not outputs:
        return np.zeros((0,), np.float32)
    return to_device(get_array_module(outputs[0]).concatenate(outputs), CPU)  # one copy back from a GPU


register_trainer(Trainer, predict, TrainingError)


# The functional forms, for code that prefers lamina.training.fit(model, ...) to model.fit(...).
def compile_model(model, optimizer="adam", loss="cross_entropy", metrics=None):
    return model.compile(optimizer, loss, metrics)


def fit(model, x, y=None, **kwargs):
    return model.fit(x, y, **kwargs)


def evaluate(model, x, y=None, **kwargs):
    return model.evaluate(x, y, **kwargs)
