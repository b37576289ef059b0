"""L-BFGS: a quasi-Newton method that builds its curvature estimate from the last few steps.

Each `step(closure)` runs up to `max_iter` iterations of the limited-memory BFGS method (Nocedal and Wright,
Numerical Optimization, algorithm 7.4, the "two-loop recursion"), with either a fixed step of `lr` or a line
search satisfying the strong Wolfe conditions (algorithms 3.5 and 3.6, with cubic interpolation, formula 3.59).
The parameters are handled as one flat vector, so every parameter group shares one history.
"""

import math

from lamina.autograd import enable_grad, no_grad
from lamina.backend import get_array_module
from lamina.optim.optimizer import Optimizer, host_copy


class LBFGS(Optimizer):
    """L-BFGS with PyTorch's arguments; `step` needs a closure that recomputes the loss and its gradients.

    >>> w = lamina.tensor([1.5, -0.5], requires_grad=True)
    >>> opt = lamina.optim.LBFGS([w], line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = ((w - lamina.tensor([3.0, 2.0])) ** 2).sum()
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure); [round(v, 4) for v in w.tolist()]
    [3.0, 2.0]
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if not lr > 0:
            raise ValueError(f"LBFGS: lr must be positive, got {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', not {line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        self._params = [p for group in self.param_groups for p in group["params"]]

    # --- the parameters as one flat vector ------------------------------------------------------
    def _flat_grad(self):
        xp = get_array_module(self._params[0].array)  # on the parameters' device: the whole method runs there
        return xp.concatenate([xp.zeros(p.array.size, p.array.dtype) if p.grad is None else p.grad.array.ravel()
                               for p in self._params])

    def _add(self, t, direction):
        start = 0
        for p in self._params:
            size = p.array.size
            p.array += (t * direction[start:start + size]).reshape(p.shape).astype(p.array.dtype, copy=False)
            start += size

    def _evaluate(self, closure):
        with enable_grad():
            loss = closure()
        return float(loss), self._flat_grad(), loss

    def _try_step(self, closure, x, t, d):
        """Loss and gradient at x + t d; the parameters are put back to x afterwards."""
        self._add(t, d)
        loss, grad, _ = self._evaluate(closure)
        for p, saved in zip(self._params, x):
            p.array[...] = saved
        return loss, grad

    @no_grad()
    def step(self, closure):
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that clears the gradients, computes the loss, calls "
                               "backward() and returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, history_size = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        self._follow_parameters()
        state = self.state.setdefault(self._params[0], {"func_evals": 0, "n_iter": 0})

        loss, g, orig_loss = self._evaluate(closure)  # what step returns: the closure's loss, as it gave it
        evals = 1
        state["func_evals"] += 1
        if float(abs(g).max()) <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_steps, ro = state.get("old_dirs", []), state.get("old_stps", []), state.get("ro", [])
        h_diag, prev_g, prev_loss = state.get("H_diag", 1), state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, old_dirs, old_steps, ro, h_diag = -g, [], [], [], 1
            else:
                d, h_diag = self._direction(g, prev_g, d, t, old_dirs, old_steps, ro, h_diag, history_size)
            prev_g, prev_loss = g.copy(), loss
            # the first step ever is scaled down by the gradient's size; later ones trust the curvature
            t = min(1.0, 1.0 / float(abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(g @ d)
            if gtd > -tol_change:  # not a descent direction (any more)
                break
            if group["line_search_fn"] == "strong_wolfe":
                x = [p.array.copy() for p in self._params]
                loss, g, t, ls_evals = _strong_wolfe(lambda step, x=x, d=d: self._try_step(closure, x, step, d),
                                                     t, d, loss, g, gtd, tol_change)
                self._add(t, d)
            else:
                self._add(t, d)
                ls_evals = 0
                if n_iter != max_iter:  # the last iteration's loss is left for the next step to evaluate
                    loss, g, _ = self._evaluate(closure)
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            if (n_iter == max_iter or evals >= max_eval or float(abs(g).max()) <= tol_grad
                    or float(abs(d * t).max()) <= tol_change or abs(loss - prev_loss) < tol_change):
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_steps, ro=ro, H_diag=h_diag, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return orig_loss

    @staticmethod
    def _direction(g, prev_g, d, t, old_dirs, old_steps, ro, h_diag, history_size):
        """The next search direction: -H g, H the inverse-Hessian estimate from the kept (s, y) pairs."""
        y, s = g - prev_g, d * t
        ys = float(y @ s)
        if ys > 1e-10:  # keep the pair only if it carries positive curvature
            if len(old_dirs) == history_size:
                old_dirs.pop(0), old_steps.pop(0), ro.pop(0)
            old_dirs.append(y), old_steps.append(s), ro.append(1.0 / ys)
            h_diag = ys / float(y @ y)
        q = -g
        alphas = [0.0] * len(old_dirs)
        for i in reversed(range(len(old_dirs))):
            alphas[i] = float(old_steps[i] @ q) * ro[i]
            q = q - alphas[i] * old_dirs[i]
        r = q * h_diag
        for i in range(len(old_dirs)):
            beta = float(old_dirs[i] @ r) * ro[i]
            r = r + old_steps[i] * (alphas[i] - beta)
        return r, h_diag

    def state_dict(self):
        packed = super().state_dict()
        for values in packed["state"].values():
            for key in ("old_dirs", "old_stps", "ro"):
                if key in values:
                    values[key] = [host_copy(v) for v in values[key]]
        return packed


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """Where the cubic through (x1, f1) and (x2, f2) with slopes g1, g2 has its minimum, kept within bounds."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(position, low), high)


def _strong_wolfe(evaluate, t, d, f, g, gtd, tolerance_change, c1=1e-4, c2=0.9, max_ls=25):
    """A step length t along d meeting the strong Wolfe conditions: (loss, grad, t, evaluations)."""
    d_norm = float(abs(d).max())
    f_new, g_new = evaluate(t)
    evals, gtd_new = 1, float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done, ls_iter = False, 0
    # bracketing: grow t until an interval is known to contain an acceptable step
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new.copy(), gtd_new]]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [[t, f_new, g_new, gtd_new]], True
            break
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new.copy(), gtd_new]]
            break
        low, high = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(low, high))
        f_prev, g_prev, gtd_prev = f_new, g_new.copy(), gtd_new
        f_new, g_new = evaluate(t)
        evals, gtd_new, ls_iter = evals + 1, float(g_new @ d), ls_iter + 1
    else:
        bracket = [[0.0, f, g, gtd], [t, f_new, g_new, gtd_new]]

    # zoom: shrink the interval until a point in it meets both conditions
    insufficient_progress = False
    low_i, high_i = (0, -1) if bracket[0][1] <= bracket[-1][1] else (-1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break
        (a, fa, _, ga), (b, fb, _, gb) = bracket
        t = _cubic_minimum(a, fa, ga, b, fb, gb)
        # a point too close to an end of the interval makes little progress: move it inwards
        eps = 0.1 * (max(a, b) - min(a, b))
        if min(max(a, b) - t, t - min(a, b)) < eps:
            if insufficient_progress or t >= max(a, b) or t <= min(a, b):
                t = max(a, b) - eps if abs(t - max(a, b)) < abs(t - min(a, b)) else min(a, b) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evals, gtd_new, ls_iter = evals + 1, float(g_new @ d), ls_iter + 1
        if f_new > f + c1 * t * gtd or f_new >= bracket[low_i][1]:
            bracket[high_i] = [t, f_new, g_new.copy(), gtd_new]
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_i][0] - bracket[low_i][0]) >= 0:
                bracket[high_i] = bracket[low_i]
            bracket[low_i] = [t, f_new, g_new.copy(), gtd_new]
        low_i, high_i = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
    t, f_new, g_new, _ = bracket[low_i]
    return f_new, g_new, t, evals
