"""fit / evaluate / predict, callbacks, metrics, and stopping cleanly."""

import csv
import math
import os
import signal

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import datasets, optim
from lamina.data import DataLoader, TensorDataset
from lamina.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
    metrics,
)


def _classifier():
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))


def test_fit_learns_admissions_and_returns_history():
    X, y = datasets.admissions(n=400, noise=0.0)
    model = _classifier()
    model.compile(optim.Adam(model.parameters(), lr=0.01), "cross_entropy", ["accuracy"])
    history = model.fit(X - 0.5, y, epochs=40, batch_size=16, validation_split=0.25, verbose=0)
    assert history.epoch == list(range(40)) and model.history is history
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert history.history["val_accuracy"][-1] >= 0.9
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    results = model.evaluate(X - 0.5, y)
    assert results["accuracy"] >= 0.9
    predictions = model.predict(X - 0.5, batch_size=64)
    assert predictions.shape == (400, 2) and predictions.dtype == np.float32


def test_fit_accepts_tensors_and_loaders_and_binary_losses():
    X, y = datasets.xor(n=200, noise=0.0, seed=1)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    model.compile(optim.Adam(model.parameters(), lr=0.05), "bce_with_logits", ["accuracy", "precision", "f1"])
    loader = DataLoader(TensorDataset(X, y.astype(np.float32)), batch_size=20, shuffle=True, seed=0)
    history = model.fit(loader, epochs=60, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert model.evaluate(lamina.tensor(X), lamina.tensor(y))["f1"] > 0.9


def test_fit_errors_are_clear():
    model = _classifier()
    with pytest.raises(lamina.training.TrainingError, match="compile"):
        model.fit(np.zeros((4, 2)), np.zeros(4, np.int64))
    model.compile()
    with pytest.raises(ValueError, match=r"x has 4 samples \(shape \(4, 2\)\) but y has 3"):
        model.fit(np.zeros((4, 2)), np.zeros(3, np.int64), verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(loss="hinge")


def test_float64_inputs_train_in_float32():
    X, y = datasets.moons(n=64)
    model = _classifier().compile()
    seen = []
    model.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].dtype, out.dtype)))
    model.fit(X.astype(np.float64), y, epochs=1, verbose=0)
    assert set(seen) == {(lamina.float32, lamina.float32)}


def test_progress_output_by_verbosity(capsys):
    X, y = datasets.circles(n=64)
    model = _classifier().compile(metrics=["accuracy"])
    model.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(X, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2") and "loss" in lines[1] and "accuracy" in lines[1]
    model.fit(X, y, epochs=1, verbose=1)  # not a terminal here: plain lines instead of a bar
    assert capsys.readouterr().out.startswith("Epoch 1/1")


def test_progress_bar_on_a_terminal_shows_batches_and_metrics():
    tqdm = pytest.importorskip("tqdm")  # noqa: F841

    class FakeTerminal:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return True

    stream = FakeTerminal()
    X, y = datasets.moons(n=128)
    _classifier().compile(metrics=["accuracy"]).fit(X, y, epochs=1, batch_size=16, verbose=1,
                                                    callbacks=[ProgressBar(1, stream=stream)])
    assert "Epoch 1/1" in stream.text and "8/8" in stream.text and "loss=" in stream.text
    assert "accuracy=" in stream.text


def test_early_stopping_restores_best_weights():
    X, y = datasets.moons(n=200)
    model = _classifier()
    model.compile(optim.SGD(model.parameters(), lr=0.5))

    class Worsen(Callback):  # from epoch 3 on, wreck the weights so the monitored loss rises
        def on_train_batch_end(self, batch, logs=None):
            if len(self.model.history.epoch) >= 3:
                for p in self.model.parameters():
                    p.data += 0.5

    stopper = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    snapshot = {}

    class Remember(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs["loss"] <= min(self.model.history.history["loss"]):
                snapshot.update({k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()})

    history = model.fit(X, y, epochs=20, verbose=0, callbacks=[Worsen(), stopper, Remember()])
    assert stopper.stopped_epoch is not None and len(history.epoch) < 20
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.detach().numpy(), snapshot[key])


def test_checkpoint_csv_and_scheduler_callbacks(tmp_path):
    X, y = datasets.spiral(n=100)
    model = _classifier().compile(metrics=["accuracy"])
    schedule = optim.lr_scheduler.StepLR(model.optimizer, step_size=1, gamma=0.5)
    callbacks = [ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True),
                 ModelCheckpoint(tmp_path / "every-{epoch}.npz", monitor="loss"),
                 CSVLogger(tmp_path / "log.csv"), LearningRateScheduler(schedule)]
    model.fit(X, y, epochs=3, validation_data=(X, y), callbacks=callbacks, verbose=0)
    assert sorted(p.name for p in tmp_path.glob("every-*.npz")) == ["every-1.npz", "every-2.npz", "every-3.npz"]
    state = lamina.load_checkpoint(tmp_path / "every-2.npz")
    assert state["epoch"] == 2 and state["history"]["epoch"] == [0, 1]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert (tmp_path / "best.npz").exists()


def test_keras_style_schedule_function():
    X, y = datasets.moons(n=50)
    model = _classifier().compile()
    model.fit(X, y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert model.history.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_terminate_on_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    X, y = datasets.moons(n=64)
    model = _classifier()
    model.compile(optim.SGD(model.parameters(), lr=0.1))

    class Poison(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if len(self.model.history.epoch) == 2 and batch == 1:
                self.model[0].weight.data[0, 0] = np.nan

    ckpt = tmp_path / "ckpt.npz"
    nan_stop = TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match="epoch 3, batch 2"):  # opted out of fit's own stop: it warns
        history = model.fit(X, y, epochs=5, batch_size=16, verbose=0, stop_on_nan=False,
                            callbacks=[Poison(), nan_stop, ModelCheckpoint(ckpt, monitor="loss")])
    assert "epoch 3, batch 2" in nan_stop.message and "epoch 3, batch 2" in capsys.readouterr().err
    assert history.interrupted and len(history.epoch) == 3 and math.isnan(history.history["loss"][-1])
    state = lamina.load_checkpoint(ckpt)
    assert state["epoch"] == 2
    assert all(np.isfinite(v.detach().numpy()).all() for v in state["model"].state_dict().values())


def test_ctrl_c_stops_after_the_current_batch_and_keeps_weights(capsys):
    X, y = datasets.moons(n=160)
    model = _classifier().compile()
    batches = []

    class PressCtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)
            if len(self.model.history.epoch) == 1 and batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    history = model.fit(X, y, epochs=5, batch_size=16, verbose=0, callbacks=[PressCtrlC()])
    assert history.interrupted and history.epoch == [0, 1]
    assert len(batches) == 10 + 3  # one full epoch, then batches 0, 1, 2 of the second
    assert "Interrupted" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_metrics_functions():
    y_true = np.array([0, 1, 2, 2, 1])
    scores = np.eye(3)[[0, 2, 2, 2, 1]]
    assert metrics.accuracy(y_true, scores) == 0.8
    assert metrics.confusion_matrix(y_true, scores).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert metrics.precision(y_true, scores) == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert metrics.recall(y_true, scores) == pytest.approx((1 + 0.5 + 1) / 3)
    p, r = (1 + 1 + 2 / 3) / 3, (1 + 0.5 + 1) / 3
    assert 0 < metrics.f1(y_true, scores) <= max(p, r)
    assert metrics.top_k_accuracy(y_true, np.array([[3, 2, 1]] * 5), k=2) == 0.6
    assert metrics.accuracy(np.array([1, 0]), np.array([[2.0], [-1.0]])) == 1.0  # binary logits
    assert metrics.mae([1.0, 2.0], [1.5, 1.0]) == 0.75 and metrics.mse([1.0, 2.0], [1.5, 1.0]) == 0.625


def test_a_model_can_override_train_step_and_keep_the_rest_of_fit():
    """Custom training (here a hand-written L2 penalty and a log of its own) without rewriting fit."""
    X, y = datasets.admissions(n=200, seed=4)

    class Penalized(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _classifier()

        def forward(self, x):
            return self.net(x)

        def train_step(self, batch):
            x, labels = batch
            scores = self(x)
            data_loss = nn.functional.cross_entropy(scores, labels)
            penalty = sum((p * p).sum() for p in self.parameters())
            self.optimizer.zero_grad()
            (data_loss + 1e-3 * penalty).backward()
            self.optimizer.step()
            return {"loss": data_loss.item(), "penalty": penalty.item()}

    model = Penalized()
    model.compile(optim.Adam(model.parameters(), lr=0.01), "cross_entropy", ["accuracy"])
    before = model.evaluate(X - 0.5, y)["loss"]
    seen = []

    class Watch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs)

    history = model.fit(X - 0.5, y, epochs=30, batch_size=16, verbose=0, callbacks=[Watch()])
    assert set(seen[0]) == {"loss", "penalty"}
    assert history.history["penalty"][-1] > 0
    after = model.evaluate(X - 0.5, y)  # test_step is still the compiled loss and metrics
    assert after["loss"] < before and after["accuracy"] > 0.75


def test_training_state_lives_in_one_trainer():
    model = _classifier().compile("sgd", "cross_entropy", ["accuracy"])
    trainer = model.trainer
    assert isinstance(trainer, lamina.training.Trainer)
    assert model.optimizer is trainer.optimizer and isinstance(model.optimizer, optim.SGD)
    model.stop_training = True
    assert trainer.stop_training is True
    history = model.fit(np.zeros((8, 2), np.float32), np.zeros(8, np.int64), epochs=1, verbose=0)
    assert model.history is history is trainer.history
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        _classifier().compile("adamm")


def test_fit_asks_the_models_strategy_how_to_share_work():
    """What DistributedDataParallel hands fit, shown with a stand-in: no MPI needed."""
    calls = {"sampler": 0, "reduce": 0, "stop": 0}

    class HalfTheData(lamina.training.SingleProcess):
        is_main = False  # callbacks that write output do not run here

        def sampler(self, num_samples, shuffle):
            calls["sampler"] += 1
            return list(range(0, num_samples, 2))

        def reduce_logs(self, logs):
            calls["reduce"] += 1
            return {k: v * 0 for k, v in logs.items()}

        def agree_to_stop(self, stopping):
            calls["stop"] += 1
            return stopping

    class Wrapped(nn.Module):
        strategy = HalfTheData()

        def __init__(self):
            super().__init__()
            self.net = _classifier()

        def forward(self, x):
            return self.net(x)

    X, y = datasets.admissions(n=64, seed=0)
    model = Wrapped().compile("sgd")
    batches = []

    class Count(Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    history = model.fit(X, y, epochs=2, batch_size=8, verbose=1, callbacks=[Count()])
    assert calls == {"sampler": 1, "reduce": 2, "stop": len(batches)}
    assert len(batches) == 2 * 4  # 32 of the 64 samples, in batches of 8
    assert history.history["loss"] == [0.0, 0.0]


def test_a_non_finite_loss_stops_fit_by_default_naming_where(tmp_path):
    X, y = datasets.moons(n=64)
    model = _classifier()
    model.compile(optim.SGD(model.parameters(), lr=0.1))
    X = X.copy()
    X[40] = np.nan  # one bad sample, in the third batch of 16
    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(lamina.training.NonFiniteLossError, match="loss became nan at epoch 1, batch 3") as caught:
        model.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[ModelCheckpoint(ckpt)])
    assert caught.value.history is model.history and not ckpt.exists()  # no checkpoint built from NaNs


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive whole number, not 0"),
    ({"epochs": 2.5}, "epochs must be a positive whole number"),
    ({"batch_size": -3}, "batch_size must be a positive whole number"),
    ({"batch_size": True}, "batch_size must be a positive whole number"),
    ({"validation_split": 1.0}, "validation_split must be a fraction between 0 and 1"),
    ({"validation_split": -0.1}, "validation_split must be a fraction between 0 and 1"),
    ({"verbose": 3}, "verbose must be 0, 1 or 2"),
])
def test_bad_fit_arguments_fail_before_any_work(kwargs, message):
    model = _classifier().compile()
    before = model[0].weight.detach().numpy().copy()
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((8, 2), np.float32), np.zeros(8, np.int64), **kwargs)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), before)


def test_empty_data_and_bool_labels_get_one_clear_error():
    model = _classifier().compile()
    with pytest.raises(ValueError, match="fit: the data is empty"):
        model.fit(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), verbose=0)
    with pytest.raises(ValueError, match="evaluate: the data is empty"):
        model.evaluate(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
    with pytest.raises(TypeError, match="y holds booleans"):
        model.fit(np.zeros((4, 2), np.float32), np.array([True, False, True, False]), verbose=0)


@pytest.mark.parametrize("loss", ["bce_with_logits", "bce", nn.BCEWithLogitsLoss(), "cross_entropy",
                                  nn.CrossEntropyLoss()])
def test_fit_refuses_targets_a_loss_reads_as_probabilities_outside_zero_one(loss):
    soft = loss == "cross_entropy" or isinstance(loss, nn.CrossEntropyLoss)
    model = nn.Sequential(nn.Linear(2, 2 if soft else 1), *([] if soft or loss != "bce" else [nn.Sigmoid()]))
    model.compile("sgd", loss)
    y = np.array([[1.5, -0.5], [0.0, 1.0]], np.float32) if soft else np.array([0.0, 2.0], np.float32)
    with pytest.raises(ValueError, match=r"targets as probabilities in \[0, 1\], but they range over"):
        model.fit(np.zeros((2, 2), np.float32), y, verbose=0)


def test_a_process_that_ignores_ctrl_c_goes_on_ignoring_it():
    X, y = datasets.moons(n=32)
    model = _classifier().compile()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        class PressCtrlC(Callback):
            def on_train_batch_end(self, batch, logs=None):
                os.kill(os.getpid(), signal.SIGINT)

        history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[PressCtrlC()])
        assert not history.interrupted and history.epoch == [0, 1]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
