"""Callbacks: objects whose hooks fit() calls as training goes, with Keras's hook names.

Each hook receives `logs`, a dict of the current values ("loss", metric names,
and "val_..." at the end of an epoch). `self.model` is the model being trained
and `self.params` holds epochs, steps and verbosity.
"""

import csv
import math
import os
import sys
import time

from lamina import io


class Callback:
    main_process_only = False  # in distributed training, run only on rank 0 (output, files)

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass


class CallbackList(Callback):
    def __init__(self, callbacks, model, params):
        super().__init__()
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)


class History(Callback):
    """Per-epoch values of the loss and metrics: history.history["loss"], history.epoch, as in Keras."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.interrupted = False

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def record_interrupted(self, epoch, logs):
        """Keep a partial epoch's values, marked as interrupted."""
        self.interrupted = True
        self.on_epoch_end(epoch, logs)

    def to_dict(self):
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
                "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, data):
        history = cls()
        history.epoch = list(data.get("epoch", []))
        history.history = {k: list(v) for k, v in data.get("history", {}).items()}
        return history


def _format_logs(logs):
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))


class ProgressBar(Callback):
    """Epoch, batch progress, ETA and live loss and metrics.

    verbose=1: a bar (tqdm) on a terminal; verbose=2: one line per epoch;
    verbose=0: silent. When the output is not a terminal, or tqdm is not
    installed, verbose=1 prints one plain line per epoch as well.
    """

    main_process_only = True

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose, self.stream = verbose, stream
        self._bar = None

    def _use_bar(self):
        stream = self.stream or sys.stdout
        if self.verbose != 1 or not getattr(stream, "isatty", lambda: False)():
            return False
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return False
        return True

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self._use_bar():
            from tqdm import tqdm

            self._bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
                             unit="batch", file=self.stream or sys.stdout, leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)
            if batch % 5 == 0 or batch + 1 == self.params.get("steps"):
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()}, refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()})
            self._bar.close()
            self._bar = None
        elif self.verbose:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}  {seconds:.1f}s  {_format_logs(logs or {})}",
                  file=self.stream or sys.stdout, flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False,
                 verbose=0):
        super().__init__()
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "precision", "recall", "f1")) else "min"
        self.mode, self.restore_best_weights, self.verbose = mode, restore_best_weights, verbose
        self.stopped_epoch = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.best, self.best_weights = 0, math.inf if self.mode == "min" else -math.inf, None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: monitored value {self.monitor!r} is not among {sorted(logs or {})}")
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.array.copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"Early stopping at epoch {epoch + 1}: {self.monitor} has not improved for {self.wait} epochs")


class ModelCheckpoint(Callback):
    """Save a checkpoint (model, optimizer, epoch, history) at the end of each epoch.

    `path` may hold "{epoch}" and log names, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.npz".
    With save_best_only, only epochs that improve `monitor` are written.
    """

    main_process_only = True

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        super().__init__()
        self.path, self.monitor, self.save_best_only, self.verbose = os.fspath(path), monitor, save_best_only, verbose
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "precision", "recall", "f1")) else "min"
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                raise KeyError(f"ModelCheckpoint: monitored value {self.monitor!r} is not among {sorted(logs)}")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        history = getattr(self.model, "history", None)
        io.save(self.model, path, optimizer=getattr(self.model, "optimizer", None),
                scheduler=getattr(self.model, "scheduler", None), epoch=epoch + 1,
                history=history.to_dict() if history is not None else None)
        if self.verbose:
            print(f"Saved checkpoint {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch.

    `schedule` is either a function (epoch, lr) -> new lr, as in Keras, or one of
    lamina.optim.lr_scheduler's schedulers, which is stepped after each epoch
    (OneCycleLR after each batch; ReduceLROnPlateau with val_loss, else loss).
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        if callable(self.schedule) and not hasattr(self.schedule, "step"):
            for group in self.model.optimizer.param_groups:
                group["lr"] = float(self.schedule(epoch, group["lr"]))
            if self.verbose:
                print(f"Epoch {epoch + 1}: learning rate {self.model.optimizer.param_groups[0]['lr']:.6g}")

    def _per_batch(self):
        return type(self.schedule).__name__ == "OneCycleLR"  # OneCycleLR counts batches, not epochs

    def on_train_batch_end(self, batch, logs=None):
        if self._per_batch():
            self.schedule.step()

    def on_epoch_end(self, epoch, logs=None):
        if hasattr(self.schedule, "step") and not self._per_batch():
            if "ReduceLROnPlateau" in type(self.schedule).__name__:
                self.schedule.step(logs.get("val_loss", logs.get("loss")))
            else:
                self.schedule.step()


class CSVLogger(Callback):
    """Append each epoch's logs as a row of a CSV file."""

    main_process_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *logs], delimiter=self.separator)
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **logs})
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss becomes NaN or infinite, naming where it happened."""

    def __init__(self):
        super().__init__()
        self.message = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.message = f"TerminateOnNaN: loss became {loss} at epoch {self._epoch + 1}, batch {batch + 1}; stopping"
            print(self.message, file=sys.stderr)
            self.model.stop_training = True
