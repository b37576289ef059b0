"""Finite-difference checks of backward, first and second order, in float64.

The check compares vector-Jacobian products: for a fixed random cotangent v,
the analytic d(sum(v * f(x)))/dx from backward against central differences of
the same scalar. A wrong Jacobian changes that product for almost every v.
"""

import numpy as np

from lamina.autograd import Tensor, grad, wrap
from lamina.backend import float64
from lamina.errors import LaminaError


class GradcheckError(LaminaError, AssertionError):
    """Raised when an analytic gradient disagrees with its finite-difference estimate."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _to_float64(inputs):
    """Fresh float64 leaves for float inputs (keeping requires_grad); other inputs pass through."""
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            out.append(wrap(x.array.astype(float64), requires_grad=x.requires_grad))
        else:
            out.append(x)
    return out


def _projection(fn, inputs, cotangents):
    """sum_k sum(v_k * f_k(inputs)) as a tensor."""
    outputs = _as_tuple(fn(*inputs))
    if len(outputs) != len(cotangents):
        raise ValueError(f"gradcheck: fn returned {len(outputs)} outputs, expected {len(cotangents)}")
    total = None
    for out, v in zip(outputs, cotangents):
        if out.dtype.kind != "f":
            continue
        term = (out * v).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check `fn`'s gradients against central differences; return True or raise GradcheckError.

    Float inputs are copied to float64; those with requires_grad=True are checked.

    >>> import lamina
    >>> x = lamina.randn(3, 4, dtype=lamina.float64, requires_grad=True)
    >>> lamina.gradcheck(lambda t: (t * t).sum(dim=1), [x])
    True
    """
    inputs = _to_float64(_as_tuple(inputs))
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    rng = np.random.default_rng(seed)
    outputs = _as_tuple(fn(*inputs))
    cotangents = [wrap(rng.standard_normal(out.shape)) for out in outputs]

    projection = _projection(fn, inputs, cotangents)
    analytic = [None] * len(checked)
    if projection is not None and projection.requires_grad:
        analytic = grad(projection, [inputs[i] for i in checked], allow_unused=True)

    for slot, i in enumerate(checked):
        x = inputs[i]
        expected = np.zeros(x.shape) if analytic[slot] is None else np.asarray(analytic[slot].array, dtype=float64)
        numeric = np.zeros(x.shape)
        flat = x.array.reshape(-1)  # a view: perturbing it perturbs x
        # grad mode stays on: for gradgradcheck, fn itself runs a backward
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            up = _projection(fn, inputs, cotangents)
            flat[k] = original - eps
            down = _projection(fn, inputs, cotangents)
            flat[k] = original
            numeric.reshape(-1)[k] = (float(up.array) - float(down.array)) / (2 * eps) if up is not None else 0.0
        error = np.abs(expected - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and (error > 0).any() or not np.isfinite(expected).all():
            worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)), x.shape)
            raise GradcheckError(
                f"gradcheck failed for input {i} of shape {x.shape}: at element {tuple(int(w) for w in worst)} "
                f"the analytic gradient is {expected[worst]:.8g} but the numeric one is {numeric[worst]:.8g} "
                f"(atol={atol}, rtol={rtol})"
            )
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check second derivatives: run `gradcheck` on the function (inputs, v) -> d(sum(v * fn))/d(inputs)."""
    inputs = _to_float64(_as_tuple(inputs))
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    rng = np.random.default_rng(seed + 1)
    outputs = _as_tuple(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = [wrap(rng.standard_normal(out.shape), requires_grad=True) for out in outputs]
    else:
        grad_outputs = _to_float64(_as_tuple(grad_outputs))
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        projection = _projection(fn, xs, vs)
        if projection is None or not projection.requires_grad:
            return tuple(wrap(np.zeros(xs[i].shape)) for i in checked)
        grads = grad(projection, [xs[i] for i in checked], create_graph=True, allow_unused=True)
        return tuple(wrap(np.zeros(xs[i].shape)) if g is None else g for i, g in zip(checked, grads))

    return gradcheck(first_derivative, list(inputs) + list(grad_outputs), eps=eps, atol=atol, rtol=rtol, seed=seed)
