"""The Optimizer base: parameter groups, per-parameter state, and state dicts.

State lives on its parameter's device. A model moved after its optimizer was
built (`model.to("cuda")`) keeps the same Parameter objects, so the optimizer
notices the move at its next step (one device check per step) and moves its state
along; state dicts always hold host (NumPy) arrays, as a file does.
"""

import copy

from lamina.autograd import Tensor, no_grad, zero_grad
from lamina.backend import CPU, device_of, get_array_module, is_array, to_device


def host_copy(value):
    """A NumPy copy of a state array wherever it lives; anything else as it is."""
    if not is_array(value):
        return value
    return value.copy() if device_of(value) is CPU else to_device(value, CPU)


def on_device_of(value, param):
    """A state value made to live with `param`: an array copied onto its device, lists of arrays alike."""
    if isinstance(value, list):
        return [on_device_of(v, param) for v in value]
    if not is_array(value):
        return value
    where = device_of(param.array)
    return value.copy() if device_of(value) == where else to_device(value, where)


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
        self._state_device = None  # the device of the first parameter when its state was last placed
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
        self._follow_parameters()
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
            buffer = self._scratch_buffers[param] = get_array_module(param.array).empty_like(param.array)
        return buffer

    def _follow_parameters(self):
        """Move the state to the parameters' devices if the model moved since the last step. Checked by the
        device of the first parameter only: a model moves as a whole (Module.to)."""
        where = device_of(self.param_groups[0]["params"][0].array)
        if where is self._state_device:
            return
        for param, values in self.state.items():
            for key, value in values.items():
                if is_array(value) or isinstance(value, list):
                    values[key] = on_device_of(value, param)
        self._scratch_buffers.clear()
        self._state_device = where

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
                    state[index[id(p)]] = {k: host_copy(v) for k, v in self.state[p].items()}
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
                if is_array(v) and v.shape == p.shape:
                    v = v.astype(p.array.dtype)  # state lives in the parameter's dtype
                restored[k] = on_device_of(v, p)  # and on its device, as PyTorch loads it
            self.state[p] = restored
        self._scratch_buffers.clear()
        self._state_device = device_of(params[0].array) if params else None

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
