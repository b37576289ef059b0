"""Optimizers turn gradients into weight updates; lr_scheduler changes their step size over time."""

from lamina.optim import lr_scheduler
from lamina.optim.algorithms import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop
from lamina.optim.lbfgs import LBFGS
from lamina.optim.optimizer import Optimizer

# By name, for compile("adam") and the command line's --optimizer.
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
              "adadelta": Adadelta}


def create(name, params, **kwargs):
    """The optimizer called `name` (any case) over `params`.

    >>> import lamina
    >>> create("Adam", [lamina.zeros(2, requires_grad=True)], lr=0.01).defaults["lr"]
    0.01
    """
    if name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name.lower()](params, **kwargs)


__all__ = ["OPTIMIZERS", "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "LBFGS", "Optimizer", "RMSprop", "create",
           "lr_scheduler"]
