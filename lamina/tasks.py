"""The essay's sequence tasks, each one `lamina train --dataset NAME`: hearing spoken digits, reading lines of
handwritten digits, and making up names.

A task says what a run trains on, with which model, loss and measures, what it reports beyond the
loss, and what a finished model does with something new (a recording, a picture of a line, or
nothing at all: a new name). The `lamina` command and the report read them; a script can too:

>>> task = lamina.tasks.TASKS["names"]
>>> task.model_kinds, task.defaults["epochs"]
(('transformer', 'gru'), 6)
"""

import numpy as np

from lamina import audio, datasets, models, ops, training
from lamina.training.metrics import Metric


class LineAccuracy(Metric):
    """The fraction of lines read entirely right (every digit, in order, none missing or extra)."""

    name = "line_accuracy"

    def __init__(self):
        self.reset()

    def reset(self):
        self.right, self.count = 0, 0

    def update(self, y_true, y_pred):
        for read, truth in zip(models.ctc_greedy_decode(y_pred), np.asarray(y_true)):
            self.right += read == truth[truth != datasets.PAD].tolist()
            self.count += 1

    def result(self):
        return self.right / max(self.count, 1)


class Task:
    """What `lamina train --dataset NAME` does for one sequence dataset (the subclasses below)."""

    name = None
    model_kinds = ()  # the --model choices, the default first
    defaults = {}  # epochs, batch_size, lr, dropout
    metrics = ()

    def load(self, settings):
        """((x_train, y_train), (x_test, y_test)) as the model takes them."""
        raise NotImplementedError

    def build(self, settings):
        raise NotImplementedError

    loss = "cross_entropy"  # compile's loss: a name or a function of (scores, targets)

    def results(self, model, settings, test):
        """What the run reports beyond loss and metrics, as a dict of plain numbers and strings."""
        return {}


class SpokenDigits(Task):
    """Which digit was said: a log-mel spectrogram of 80 frames (0.8 s) and 40 bands in, ten scores out."""

    name = "spoken-digits"
    model_kinds = ("cnn",)
    defaults = dict(epochs=10, batch_size=64, lr=3e-3, dropout=0.2)
    metrics = ("accuracy",)

    def load(self, settings):
        (x_train, y_train, _), (x_test, y_test, _) = datasets.spoken_digits(
            settings.get("test_speaker"), features="logmel", root=settings.get("data_dir"))
        return (x_train, y_train), (x_test, y_test)

    def build(self, settings):
        return models.speech_cnn(dropout=settings["dropout"])

    @staticmethod
    def read(path):
        """A WAV file as the network's input: (1, frames, bands)."""
        samples, rate = audio.read_wav(path)
        return audio.speech_features(samples, rate)[None]

    def predict(self, model, path):
        return ops.softmax(training.predict(model, self.read(path))[0], 0).numpy()


class Numbers(Task):
    """Every digit of a line of 3 to 8 handwritten digits, read by a CNN, a bidirectional GRU and CTC.

    The lines are made from the full MNIST set (datasets.mnist: read from $LAMINA_DATA/mnist or
    `data_dir`, downloaded once when missing): the 10,000 digits bundled with lamina are too few for a
    reader that gets 95% of 5-digit lines right, which needs about 99% of single digits.
    """

    name = "numbers"
    model_kinds = ("crnn",)
    defaults = dict(epochs=6, batch_size=32, lr=3e-3, dropout=0.0)

    @property
    def metrics(self):
        return (LineAccuracy(),)

    def load(self, settings):
        (x_train, y_train, _), (x_test, y_test, _) = datasets.number_lines(
            source="mnist", seed=settings["seed"], root=settings.get("data_dir"))
        return (datasets.scale(x_train)[:, None], y_train), (datasets.scale(x_test)[:, None], y_test)

    def build(self, settings):
        return models.LineReader()

    loss = staticmethod(models.line_ctc_loss)

    def five_digit_lines(self, settings):
        """1,000 test lines of exactly 5 digits (test digits only), the issue's measure."""
        _, (x, y, _) = datasets.number_lines(n_train=1, n_test=1000, digits_per_line=5, source="mnist",
                                             seed=settings["seed"], root=settings.get("data_dir"))
        return datasets.scale(x)[:, None], y

    def results(self, model, settings, test):
        x, y = self.five_digit_lines(settings)
        metric = LineAccuracy()
        metric.update(y, training.predict(model, x))
        return {"test_line_accuracy_5_digits": metric.result()}

    @staticmethod
    def read(path):
        """A picture of a line of digits (PNG or JPEG) as (1, 1, 28, width): white ink on black, in [0, 1]."""
        return datasets.read_handwriting(path, width=None)[None, None]

    def predict(self, model, path):
        return "".join(str(d) for d in models.ctc_greedy_decode(training.predict(model, self.read(path)))[0])


class Names(Task):
    """The next character of a name, at every position: a causal Transformer (or a GRU) over 16 characters."""

    name = "names"
    model_kinds = ("transformer", "gru")
    defaults = dict(epochs=6, batch_size=64, lr=3e-3, dropout=0.0)
    context = 16

    def load(self, settings):
        train, test = datasets.names(root=settings.get("data_dir"))
        return datasets.name_sequences(train, self.context), datasets.name_sequences(test, self.context)

    def build(self, settings):
        if settings.get("model") == "gru":
            return models.CharGRU(context=self.context)
        return models.CharTransformer(context=self.context, dropout=settings["dropout"])

    loss = staticmethod(models.sequence_cross_entropy)

    @staticmethod
    def loss_per_character(model, x, y):
        """Cross-entropy in nats per character over a whole set: every character (and each name's end) counts once."""
        scores = training.predict(model, x, 512).astype(np.float64)
        scores -= scores.max(-1, keepdims=True)
        log_probs = scores - np.log(np.exp(scores).sum(-1, keepdims=True))
        real = y != datasets.text.IGNORE
        return float(-log_probs[real, y[real]].mean())

    def results(self, model, settings, test):
        return {"test_loss_per_character": self.loss_per_character(model, *test)}

    def sample(self, model, n, temperature=1.0, generator=None, data_dir=None):
        """(names, how many of them are in the training set)."""
        new = models.sample_names(model, n, temperature, generator)
        train, _ = datasets.names(root=data_dir)
        known = set(train)
        return new, sum(name in known for name in new)


TASKS = {task.name: task for task in (SpokenDigits(), Numbers(), Names())}

__all__ = ["LineAccuracy", "TASKS", "Task"]
