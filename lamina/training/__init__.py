"""The training process: fit / evaluate / predict, callbacks, metrics and the progress display."""

from lamina.training import metrics
from lamina.training.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
)
from lamina.training.graphs import GraphedStep
from lamina.training.loop import (
    NonFiniteLossError,
    SingleProcess,
    Trainer,
    TrainingError,
    compile_model,
    evaluate,
    fit,
    make_loader,
    predict,
)

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "GraphedStep", "History", "LearningRateScheduler", "ModelCheckpoint",
    "NonFiniteLossError", "ProgressBar", "SingleProcess", "TerminateOnNaN", "Trainer", "TrainingError",
    "compile_model", "evaluate", "fit", "make_loader", "metrics", "predict",
]
