"""Module, Parameter and the containers: how layers hold weights and nest."""

from collections import OrderedDict, namedtuple

import numpy as np

from lamina.autograd import Tensor, to_arguments, wrap, zero_grad
from lamina.backend import as_array, device_of, is_array, to_device

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

# Every Module subclass by "module.QualName": `lamina.load` rebuilds only classes found here,
# so a file can name a class but never make lamina import or run anything new.
MODULE_CLASSES = {}


class Parameter(Tensor):
    """A tensor that a Module registers as a weight; requires grad by default."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        array = data.array if isinstance(data, Tensor) else as_array(data)
        super().__init__(array, dtype=array.dtype, requires_grad=requires_grad)  # keeps the dtype, as in PyTorch

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _HookHandle:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class _Training:
    trainer_class = None  # lamina.training.Trainer: what compile() makes
    predict = None
    error = RuntimeError  # lamina.training.TrainingError


_training = _Training()


def register_trainer(trainer_class, predict, error):
    """Called by lamina.training at import: nn stays below training and never imports it."""
    _training.trainer_class, _training.predict, _training.error = trainer_class, predict, error


class _TrainerState:
    """A Keras-named attribute of a compiled model (model.optimizer, .history, ...), kept in model.trainer.

    Before compile() it is an ordinary attribute of the module.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, module, owner=None):
        if module is None:
            return self
        trainer = module.__dict__.get("trainer")
        if trainer is not None:
            return getattr(trainer, self.name)
        if self.name in module.__dict__:
            return module.__dict__[self.name]
        raise AttributeError(f"{type(module).__name__} has no {self.name} yet: call compile() first")

    def __set__(self, module, value):
        trainer = module.__dict__.get("trainer")
        if trainer is None:
            module.__dict__[self.name] = value
        else:
            setattr(trainer, self.name, value)


class Module:
    """Base class of every layer and model.

    Parameters, buffers and submodules register by attribute assignment, in
    insertion order. The constructor's arguments are recorded, so that
    `lamina.save` can store the architecture of any module whose arguments are
    plain values, custom subclasses included, without extra code.
    """

    _next_hook = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODULE_CLASSES[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def __new__(cls, *args, **kwargs):
        module = super().__new__(cls)
        module.__dict__.update(
            _parameters=OrderedDict(), _buffers=OrderedDict(), _modules=OrderedDict(), _forward_hooks={},
            _non_persistent=set(), training=True, _init_args=(args, kwargs),
        )
        return module

    def __init__(self):
        pass

    # --- registration -----------------------------------------------------------------------
    def __setattr__(self, name, value):
        for table in ("_parameters", "_buffers", "_modules"):
            self.__dict__[table].pop(name, None)
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails: for every layer's self.weight
        tables = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = tables.get(table, ())
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[table]:
                del self.__dict__[table][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """State that is saved with the module but is not a weight (BatchNorm's running mean, say)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):  # as PyTorch: Sequential(4, 8) is a mistake
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} is a {type(module).__name__}, not a Module")
        self._modules[name] = module

    register_module = add_module

    # --- traversal ----------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack[0:0] = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named_members(self, table, recurse):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in module.__dict__[table].items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, prefix="", recurse=True):
        for name, p in self._named_members("_parameters", recurse):
            yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True):
        for name, b in self._named_members("_buffers", recurse):
            yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- modes and gradients -------------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            module.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        zero_grad(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, **kwargs):
        """Move and cast every parameter and buffer in place, as torch.nn.Module.to: to(device), to(dtype),
        to(device, dtype), to(tensor); returns self. Parameters stay the same objects (an optimizer built
        before the move keeps working, its state follows at its next step), gradients move with them; a
        dtype applies to floating tensors only."""
        dtype, where, _ = to_arguments(args, kwargs, f"{type(self).__name__}.to")
        dtype = None if dtype is None else np.dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if where is not None and device_of(t.array) != where:
                t.array = to_device(t.array, where)
                if t.grad is not None:
                    t.grad = wrap(to_device(t.grad.array, where))
            if dtype is not None and t.array.dtype.kind == "f" and t.array.dtype != dtype:
                t.array = t.array.astype(dtype)
                t.grad = None
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self, prefix=""):
        """Parameters and persistent buffers by dotted name, as PyTorch names them."""
        state = OrderedDict()
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            for name, p in module._parameters.items():
                if p is not None:
                    state[f"{module_prefix}.{name}" if module_prefix else name] = p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    state[f"{module_prefix}.{name}" if module_prefix else name] = b.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays or tensors into this module's parameters and buffers, checking names and shapes."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            problems = []
            if missing:
                problems.append("missing key" + "s" * (len(missing) > 1) + " " + ", ".join(missing))
            if unexpected:
                problems.append("unexpected key" + "s" * (len(unexpected) > 1) + " " + ", ".join(unexpected))
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        targets = {}
        for module_prefix, module in self.named_modules():
            for table in ("_parameters", "_buffers"):
                for name, t in module.__dict__[table].items():
                    if t is not None:
                        targets[f"{module_prefix}.{name}" if module_prefix else name] = t
        for key, value in state_dict.items():
            if key not in targets:
                continue
            array = value.array if isinstance(value, Tensor) else value if is_array(value) else \
                as_array(np.asarray(value))
            target = targets[key]
            array = to_device(array, device_of(target.array))  # across devices, as PyTorch's copy_
            if tuple(array.shape) != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {tuple(array.shape)} in the state dict, "
                                 f"{tuple(target.shape)} in the model")
            target.array[...] = array
        return IncompatibleKeys(missing, unexpected)

    # --- calling -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if not self._forward_hooks:
            return out  # the common case: no list of hooks to copy
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after every forward; returns a handle with .remove()."""
        Module._next_hook += 1
        self._forward_hooks[Module._next_hook] = hook
        return _HookHandle(self._forward_hooks, Module._next_hook)

    # --- training: the loop lives in lamina.training, which registers itself below -----------------
    def compile(self, optimizer="adam", loss="cross_entropy", metrics=None):
        """Choose the optimizer, loss and metrics that fit/evaluate use, as in Keras; returns the model."""
        self.trainer = _training.trainer_class(self, optimizer, loss, metrics)
        return self

    def fit(self, x, y=None, **kwargs):
        """Train, Keras-style (see lamina.training.Trainer.fit); returns the History."""
        return self._compiled("fit").fit(x, y, **kwargs)

    def evaluate(self, x, y=None, **kwargs):
        return self._compiled("evaluate").evaluate(x, y, **kwargs)

    def predict(self, x, batch_size=256):
        return _training.predict(self, x, batch_size)

    def train_step(self, batch):
        """One training step on batch = (x, y); returns a dict of logs. Override it for custom training."""
        return self._compiled("train_step").train_step(batch)

    def test_step(self, batch):
        return self._compiled("test_step").test_step(batch)

    def _compiled(self, what):
        trainer = self.__dict__.get("trainer")
        if trainer is None:
            raise _training.error(f"{what}: call model.compile(optimizer=..., loss=...) first")
        return trainer

    optimizer = _TrainerState()
    history = _TrainerState()
    stop_training = _TrainerState()
    scheduler = _TrainerState()

    # --- display -------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _unobserved(module, capability):
    """Whether module's own class (not a subclass) declares capability, and no hook or patched forward
    watches it: then running it fused with its neighbour is invisible."""
    return (type(module).__dict__.get(capability) is not None and not module._forward_hooks
            and "forward" not in module.__dict__)


class Sequential(Module):
    """Modules applied one after another; indexable and iterable like a list.

    >>> from lamina import nn
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> model(lamina.zeros(5, 2)).shape, len(model), type(model[1]).__name__
    (lamina.Size([5, 1]), 3, 'ReLU')
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, x):
        held = None  # a ReLU, held back in case a max pooling follows: the two then run as one op
        for module in self._modules.values():
            if held is not None:
                if _unobserved(module, "pool_after_relu") and getattr(x, "ndim", None) == 4:
                    x, held = module.pool_after_relu(x), None
                    continue
                x, held = held(x), None
            if _unobserved(module, "fuses_into_pool"):
                held = module
                continue
            x = module(x)
        return x if held is None else held(x)

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for name, module in (modules or {}).items():
            self.add_module(name, module)

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        self.add_module(name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, name):
        return name in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class ParameterList(Module):
    """Parameters in a list, registered as "0", "1", ... (PyTorch's state-dict keys).

    >>> params = lamina.nn.ParameterList([lamina.nn.Parameter(lamina.ones(2)) for _ in range(2)])
    >>> list(params.state_dict()), len(params)
    (['0', '1'], 2)
    """

    def __init__(self, values=None):
        super().__init__()
        for value in values or ():
            self.append(value)

    def append(self, value):
        self.register_parameter(str(len(self._parameters)), _as_parameter(value, "ParameterList"))
        return self

    def extend(self, values):
        for value in values:
            self.append(value)
        return self

    def __getitem__(self, index):
        return list(self._parameters.values())[index]

    def __setitem__(self, index, value):
        key = list(self._parameters)[index]
        self._parameters[key] = _as_parameter(value, "ParameterList")

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())


class ParameterDict(Module):
    """Parameters by name, registered under those names."""

    def __init__(self, parameters=None):
        super().__init__()
        for name, value in dict(parameters or {}).items():
            self[name] = value

    def __getitem__(self, name):
        return self._parameters[name]

    def __setitem__(self, name, value):
        self.register_parameter(name, _as_parameter(value, "ParameterDict"))

    def __delitem__(self, name):
        del self._parameters[name]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, name):
        return name in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def update(self, parameters):
        for name, value in dict(parameters).items():
            self[name] = value


def _as_parameter(value, where):
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise TypeError(f"{where}: holds Parameters or tensors, not {type(value).__name__}")
