"""The Optimizer base: parameter groups, per-parameter state, and state dicts."""

import copy

import numpy as np

from lamina.autograd import Tensor, no_grad, zero_grad


class Optimizer:
    """Holds parameter groups (dicts with 'params' and hyperparameters) and per-parameter state.

    Subclasses implement `_update(group, param, grad, state)`, which changes
    `param.array` in place, in the parameter's own dtype.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}  # Parameter -> dict of arrays and counters
        self._scratch_buffers = {}  # Parameter -> a work array of its shape, reused every step, never saved
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: can only optimize tensors that require grad")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        zero_grad((p for group in self.param_groups for p in group["params"]), set_to_none)

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; with a closure, re-evaluate the loss first."""
        loss = None
        if closure is not None:
            from lamina.autograd import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.array
                if group.get("maximize"):
                    grad = -grad
                self._update(group, p, grad, self.state.setdefault(p, {}))
        return loss

    def _update(self, group, param, grad, state):
        raise NotImplementedError

    def _scratch(self, param):
        buffer = self._scratch_buffers.get(param)
        if buffer is None or buffer.shape != param.array.shape or buffer.dtype != param.array.dtype:
            buffer = self._scratch_buffers[param] = np.empty_like(param.array)
        return buffer

    # --- state dicts: parameters are referred to by their index over all groups -----------------
    def state_dict(self):
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: {len(groups)} parameter groups in the state, "
                             f"{len(self.param_groups)} in the optimizer")
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: a group has {len(saved['params'])} "
                                 f"parameters in the state, {len(group['params'])} in the optimizer")
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for key, values in state_dict["state"].items():
            p = params[int(key)]
            restored = {}
            for k, v in values.items():
                if isinstance(v, np.ndarray) and v.shape == p.shape:
                    v = v.astype(p.array.dtype)  # state lives in the parameter's dtype
                restored[k] = v.copy() if isinstance(v, np.ndarray) else v
            self.state[p] = restored

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
