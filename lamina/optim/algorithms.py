"""SGD, Adam, AdamW, RMSprop and Adagrad, following PyTorch's update rules exactly.

Updates are in place on the parameter's array, with Python-number
hyperparameters so that float32 stays float32. SGD's and Adam's steps are
kernels (lamina.kernels): one fused pass per parameter on the compiled path.
"""

from lamina import kernels
from lamina.backend import get_array_module
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
        buf, first = None, False
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step fills it with the gradient, as PyTorch does
                buf, first = state.setdefault("momentum_buffer", get_array_module(grad).empty_like(param.array)), True
        kernels.sgd_step(param.array, grad, buf, group["lr"], group["momentum"], group["dampening"],
                         group["weight_decay"], group["nesterov"], first)


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        _check("lr", lr)
        _check("eps", eps)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid betas: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    decoupled = False  # AdamW: weights shrink by lr * weight_decay, instead of an L2 term in the gradient

    def _update(self, group, param, grad, state):
        if not state:
            xp = get_array_module(param.array)
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.array)
            state["exp_avg_sq"] = xp.zeros_like(param.array)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param.array)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        fused_on_gpu = (kernels.gpu_kernels_for(param.array) is not None and not group["amsgrad"]
                        and grad.dtype == param.array.dtype)
        kernels.adam_step(param.array, grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                          None if fused_on_gpu else self._scratch(param), group["lr"], beta1, beta2, group["eps"],
                          state["step"], group["weight_decay"], self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay: weights shrink by lr * weight_decay each step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        for name, value in (("lr", lr), ("alpha", alpha), ("eps", eps), ("momentum", momentum)):
            _check(name, value)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, group, param, grad, state):
        xp = get_array_module(param.array)
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(param.array)
            if group["momentum"]:
                state["momentum_buffer"] = xp.zeros_like(param.array)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param.array)
        state["step"] += 1
        alpha = group["alpha"]
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
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
        xp = get_array_module(param.array)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(param.array, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        std = xp.sqrt(state["sum"])
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
        xp = get_array_module(param.array)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(param.array)
            state["acc_delta"] = xp.zeros_like(param.array)
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.array
        rho, eps = group["rho"], group["eps"]
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param.array -= group["lr"] * delta
