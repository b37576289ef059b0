"""SGD, Adam, AdamW, RMSprop and Adagrad, following PyTorch's update rules exactly.

Updates are in place on the parameter's array, with Python-number
hyperparameters so that float32 stays float32.
"""

import math

import numpy as np

from lamina.optim.optimizer import Optimizer


def _check(name, value, low=0.0):
    if not value >= low:
        raise ValueError(f"invalid {name}: {value}")


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            _check(name, value)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, group, param, grad, state):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.array -= group["lr"] * grad


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        _check("lr", lr)
        _check("eps", eps)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid betas: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _decay(self, group, param, grad):
        """Adam's L2 penalty joins the gradient; AdamW overrides this to decay the weights directly."""
        return grad + group["weight_decay"] * param.array if group["weight_decay"] else grad

    def _update(self, group, param, grad, state):
        grad = self._decay(group, param, grad)
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.array)
            state["exp_avg_sq"] = np.zeros_like(param.array)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.array)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp = self._scratch(param)  # every pass below writes in place: no temporaries, no page faults
        np.subtract(grad, m, out=tmp)  # m <- m + (1 - beta1)(g - m), PyTorch's lerp
        tmp *= 1 - beta1
        m += tmp
        np.multiply(grad, grad, out=tmp)  # v <- beta2 v + (1 - beta2) g^2
        tmp *= 1 - beta2
        v *= beta2
        v += tmp
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        np.sqrt(v, out=tmp)  # denominator sqrt(v / bc2) + eps, as PyTorch rounds it
        tmp /= bias_correction2_sqrt
        tmp += group["eps"]
        np.divide(m, tmp, out=tmp)
        tmp *= group["lr"] / bias_correction1
        param.array -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay: weights shrink by lr * weight_decay each step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)

    def _decay(self, group, param, grad):
        param.array *= 1 - group["lr"] * group["weight_decay"]
        return grad


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        for name, value in (("lr", lr), ("alpha", alpha), ("eps", eps), ("momentum", momentum)):
            _check(name, value)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, group, param, grad, state):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param.array)
            if group["momentum"]:
                state["momentum_buffer"] = np.zeros_like(param.array)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param.array)
        state["step"] += 1
        alpha = group["alpha"]
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if group["momentum"]:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / avg
            param.array -= group["lr"] * buf
        else:
            param.array -= group["lr"] * grad / avg


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False):
        for name, value in (("lr", lr), ("lr_decay", lr_decay), ("eps", eps)):
            _check(name, value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _update(self, group, param, grad, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(param.array, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        std = np.sqrt(state["sum"])
        std += group["eps"]
        param.array -= clr * grad / std


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012) as torch.optim.Adadelta: step sizes from running averages of squared
    gradients and squared updates, scaled by lr (1.0 by default)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
        for name, value in (("lr", lr), ("eps", eps)):
            _check(name, value)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: rho must be in [0, 1], got {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, group, param, grad, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param.array)
            state["acc_delta"] = np.zeros_like(param.array)
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        rho, eps = group["rho"], group["eps"]
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param.array -= group["lr"] * delta
