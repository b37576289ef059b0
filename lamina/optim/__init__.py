"""Optimizers turn gradients into weight updates; lr_scheduler changes their step size over time."""

from lamina.optim import lr_scheduler
from lamina.optim.algorithms import SGD, Adagrad, Adam, AdamW, RMSprop
from lamina.optim.optimizer import Optimizer

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
