"""Tensor, Function, and the backward walk: lamina's reverse-mode autograd.

A Function's `forward` works on raw arrays; its `backward` is written with
lamina's own ops, so that running it with grad mode on (create_graph=True)
records a graph of the gradient itself, and second derivatives come for free.
Every Function has exactly one output; ops with several results (split, max
with indices) are built from single-output ones.
"""

import functools
import operator
import weakref
from heapq import heappop, heappush

import numpy as np

from lamina import printing
from lamina.backend import as_array, default_float, device, device_of, generator_for, get_array_module, resolve_device


class _Mode:
    grad_enabled = True
    anomaly = False
    recorders = []  # callables handed (function, inputs, output) for every op that runs (ONNX export traces this way)
    inplace_count = 0  # tensors changed in place so far: until the first, nothing needs version checks


class _ModeSwitch:
    """Base of the context managers that flip a global mode; each also works as a decorator."""

    attr = None
    value = None

    def __new__(cls, *args):
        if len(args) == 1 and callable(args[0]):  # used bare, as @no_grad rather than @no_grad()
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self):
        self._previous = getattr(_Mode, self.attr)
        setattr(_Mode, self.attr, self.value)
        return self

    def __exit__(self, *exc):
        setattr(_Mode, self.attr, self._previous)

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_ModeSwitch):
    """Context manager and decorator: ops inside record no graph."""

    attr, value = "grad_enabled", False


class inference_mode(_ModeSwitch):
    """PyTorch's inference_mode: here the same as no_grad (`inference_mode(False)` leaves grad mode alone)."""

    attr = "grad_enabled"

    def __init__(self, mode=True):
        self.value = False if mode else _Mode.grad_enabled


class enable_grad(_ModeSwitch):
    """Context manager and decorator: turn graph recording back on inside `no_grad`."""

    attr, value = "grad_enabled", True


class set_grad_enabled(_ModeSwitch):
    attr = "grad_enabled"

    def __init__(self, mode=True):
        self.value = bool(mode)

    def __call__(self, func):
        raise TypeError("set_grad_enabled is a context manager; use no_grad or enable_grad as decorators")


class detect_anomaly(_ModeSwitch):
    """Context manager: raise at the first op whose forward or backward yields NaN or Inf."""

    attr, value = "anomaly", True


def is_grad_enabled():
    return _Mode.grad_enabled


def to_arguments(args, kwargs, what):
    """(dtype or None, device or None, copy) from the arguments of PyTorch's Tensor.to / Module.to; a device
    that is not usable is refused by name."""
    kwargs = dict(kwargs)
    kwargs.pop("non_blocking", None)
    copy = kwargs.pop("copy", False)
    memory_format = kwargs.pop("memory_format", None)
    dtype, where = kwargs.pop("dtype", None), kwargs.pop("device", None)
    if kwargs or memory_format not in (None, "preserve_format"):
        raise TypeError(f"{what}: unexpected arguments {sorted(kwargs) or ['memory_format']}")
    for arg in args:
        if isinstance(arg, Tensor):
            dtype, where = arg.dtype, arg.device
        elif isinstance(arg, (device, str)) and not _is_dtype_name(arg):
            where = arg
        elif isinstance(arg, bool) or arg is None:
            continue  # non_blocking or copy given by position
        elif isinstance(arg, int):
            where = arg  # t.to(0), t.cuda(0): a GPU's index, as in PyTorch
        else:
            dtype = arg
    return dtype, None if where is None else resolve_device(where, what), copy


def _is_dtype_name(text):
    try:
        np.dtype(text)  # "float32" is a dtype; "cpu", "cuda:0" are not
    except TypeError:
        return False
    return True


class Size(tuple):
    """A shape, as PyTorch's `torch.Size`: a tuple of ints that prints as `lamina.Size([2, 3])`."""

    __slots__ = ()

    def __repr__(self):
        return f"lamina.Size({list(self)})"

    __str__ = __repr__

    def numel(self):
        return int(np.prod(self, dtype=np.int64))


class _SharedWrites:
    """One count of in-place writes, shared by a tensor and the views of its memory (PyTorch's version counter)."""

    __slots__ = ("count",)

    def __init__(self, count):
        self.count = count


class Tensor:
    """An array with an optional gradient and a record of the op that made it."""

    __slots__ = ("array", "grad", "requires_grad", "grad_fn", "_writes", "__weakref__")
    generation = 0  # a leaf comes before every op (Function.generation counts from here)
    __array_ufunc__ = None  # numpy defers `array * tensor` to Tensor.__rmul__
    __hash__ = object.__hash__  # == is elementwise, yet tensors stay usable as dict keys

    def __init__(self, data=(), *sizes, dtype=None, requires_grad=False):
        """PyTorch's `torch.Tensor(...)`: always the default float dtype (`torch.tensor` infers one instead).

        Tensor(2, 3) is a zero-filled 2x3 tensor; Tensor([1, 2]) and Tensor(int_array) are float32;
        Tensor(float32_array) shares the array's memory, another array is converted; Tensor(t) shares t's
        memory and keeps its dtype. (A `dtype=` is lamina's addition.) Ops build their results with `wrap`.
        """
        if sizes or (type(data) is int):
            # PyTorch's legacy form: Tensor(2, 3) is a new float tensor of that shape (zeros here, not garbage)
            data = np.zeros(_legacy_shape((data, *sizes)), default_float if dtype is None else dtype)
        elif isinstance(data, Tensor):
            data = data.array
        elif dtype is None:
            dtype = default_float
        self.array = as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    # --- properties -------------------------------------------------------------------------
    @property
    def data(self):
        """This tensor's values as a tensor cut from the graph, sharing its memory, as PyTorch's `.data`.

        Changing it in place (`p.data -= lr * p.grad`) changes this tensor without being recorded; the
        raw array is `.array` (or `.numpy()`).

        >>> w = lamina.ones(2, requires_grad=True)
        >>> w.data -= 0.5
        >>> w.tolist(), w.requires_grad, w.data.requires_grad
        ([0.5, 0.5], True, False)
        """
        return wrap(self.array)

    @property
    def _version(self):
        """How many in-place writes this tensor's memory has had (through it or a view of it), as PyTorch counts."""
        writes = getattr(self, "_writes", 0)
        return writes.count if type(writes) is _SharedWrites else writes

    def _shared_writes(self):
        writes = getattr(self, "_writes", 0)
        if type(writes) is not _SharedWrites:
            writes = self._writes = _SharedWrites(writes)
        return writes

    @data.setter
    def data(self, value):
        array = value.array if isinstance(value, Tensor) else as_array(value)
        if array.shape != self.array.shape or array.dtype != self.array.dtype:
            self.grad = None  # PyTorch allows a new shape or dtype here; an old gradient would no longer fit
        self.array = array

    @property
    def shape(self):
        return Size(self.array.shape)

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def size(self, dim=None):
        return Size(self.array.shape) if dim is None else self.array.shape[dim]

    def numel(self):
        return self.array.size

    def dim(self):
        return self.array.ndim

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # --- conversion -------------------------------------------------------------------------
    def numpy(self):
        """The array itself (shared memory); as in PyTorch, refused for a tensor that requires grad or that
        lives on a GPU."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if type(self.array) is not np.ndarray:
            self._refuse_host_view()
        return self.array

    def __array__(self, dtype=None, copy=None):
        """`np.asarray(t)`: refused, as PyTorch refuses, when it would silently drop `t` from the graph or
        copy it off its GPU."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if type(self.array) is not np.ndarray:
            self._refuse_host_view()
        return self.array if dtype is None else self.array.astype(dtype)

    def _refuse_host_view(self):
        where = device_of(self.array)
        if where.type != "cpu":
            raise TypeError(f"can't convert {where} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")

    def _host_array(self):
        """The values as a NumPy array: the array itself on the CPU, a copy from a GPU."""
        return self.array if get_array_module(self.array) is np else self.array.get()

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item(): tensor of shape {self.shape} has {self.array.size} elements, not 1")
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def clone(self):
        return _ops.shape.clone(self)

    def detach(self):
        """A tensor sharing this one's data (and its count of in-place writes, as in PyTorch), cut from the graph."""
        detached = wrap(self.array)
        detached._writes = self._shared_writes()
        return detached

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(f"only floating point tensors can require gradients, not {self.array.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def to(self, *args, **kwargs):
        """A move and a cast, as torch.Tensor.to: to(dtype), to(device), to(device, dtype), to(other tensor).
        Returns self when nothing changes, as PyTorch does; the move is recorded, so gradients flow back to
        the tensor on its first device."""
        dtype, where, copy = to_arguments(args, kwargs, "Tensor.to")
        moved = self if where is None or where is device_of(self.array) else _ops.to_device(self, where)
        if dtype is not None and np.dtype(dtype) != self.array.dtype:
            return _ops.cast(moved, dtype)
        return _ops.clone(moved) if copy and moved is self else moved

    @property
    def device(self):
        return device_of(self.array)

    @property
    def is_cuda(self):
        return type(self.array) is not np.ndarray and device_of(self.array).type == "cuda"

    is_xpu = is_mps = False  # where PyTorch programs look before they pick a path

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None, non_blocking=False):
        return self.to("cuda" if device is None else device)

    def float(self):
        return _ops.cast(self, np.float32)

    def double(self):
        return _ops.cast(self, np.float64)

    def long(self):
        return _ops.cast(self, np.int64)

    def int(self):
        return _ops.cast(self, np.int32)

    def type(self, dtype=None):
        """With no argument, the type's name as PyTorch spells it ("lamina.FloatTensor"); else a cast."""
        if dtype is None:
            return f"lamina.{_TYPE_NAMES.get(self.array.dtype.name, self.array.dtype.name)}Tensor"
        return _ops.cast(self, dtype)

    def nelement(self):
        return self.array.size

    def contiguous(self):
        return self  # every result is laid out for its next op already

    def view_as(self, other):
        return _ops.reshape(self, other.shape)

    def __index__(self):
        if self.array.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError(f"only integer tensors of one element can be used as an index, not {self.dtype} "
                            f"of shape {self.shape}")
        return int(self.array.reshape(()))

    def __format__(self, spec):
        return format(self.item(), spec) if self.array.ndim == 0 else format(repr(self), spec)

    def __repr__(self):
        node = None if self.grad_fn is None else self.grad_fn.node_name
        where = self.device
        return printing.tensor_repr(self._host_array(), node, self.requires_grad,
                                    device=None if where.type == "cpu" else where)

    # --- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`."""
        if not self.requires_grad:
            raise RuntimeError("backward(): tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs, "
                    f"but this tensor has shape {self.shape}; pass `gradient`"
                )
            gradient = wrap(get_array_module(self.array).ones_like(self.array))
        run_backward([self], [gradient], retain_graph or create_graph, create_graph)

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward."""
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)
        elif not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")

    # --- operators (each op lives in lamina.ops) ---------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(self, other)  # self first, as PyTorch records it (grad_fn.next_functions' order)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(self, other)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    # --- in place: the same object, its memory written; the graph and a version counter follow -----
    def _in_place(self, what, compute):
        """Write compute(self) into this tensor's memory, as PyTorch's in-place ops do.

        With grad mode on and an input that requires grad, the result is also recorded: this tensor
        takes over the new op as its grad_fn (the op reads a snapshot of the old value). Ops that saved
        this tensor for their backward then see its version change and refuse to backward through it.
        """
        recording = _Mode.grad_enabled and (self.requires_grad or what.needs_graph)
        if recording and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{what.name}: a leaf tensor that requires grad is being used in an in-place "
                               "operation; do it inside lamina.no_grad() (as an optimizer step does)")
        if recording:
            old = wrap(self.array.copy())
            old.requires_grad, old.grad_fn = self.requires_grad, self.grad_fn
            new = compute(old)
        else:
            with no_grad():
                new = compute(self)
        if new.shape != self.shape:
            raise RuntimeError(f"{what.name}: the result has shape {new.shape}, which cannot be written in place "
                               f"into a tensor of shape {self.shape}")
        if new.dtype != self.dtype and not np.can_cast(new.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"{what.name}: a {new.dtype} result cannot be written in place into a "
                               f"{self.dtype} tensor")
        try:
            self.array[...] = new.array
        except ValueError as e:
            raise RuntimeError(f"{what.name}: this tensor's memory cannot be written ({e})") from None
        if self.grad_fn is not None and self.grad_fn.keeps_output:
            self.grad_fn.output_changed = True  # its backward would read the overwritten values
        if new.grad_fn is not None:
            self.grad_fn, self.requires_grad = new.grad_fn, True
        writes = getattr(self, "_writes", 0)
        if type(writes) is _SharedWrites:
            writes.count += 1  # seen by the views of this memory too
        else:
            self._writes = writes + 1
        _Mode.inplace_count += 1
        return self

    def add_(self, other, alpha=1):
        return self._in_place(_InPlace("add_", other), lambda t: t + (other if alpha == 1 else other * alpha))

    def sub_(self, other, alpha=1):
        return self._in_place(_InPlace("sub_", other), lambda t: t - (other if alpha == 1 else other * alpha))

    def mul_(self, other):
        return self._in_place(_InPlace("mul_", other), lambda t: t * other)

    def div_(self, other):
        return self._in_place(_InPlace("div_", other), lambda t: t / other)

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def clamp_(self, min=None, max=None):
        return self._in_place(_InPlace("clamp_"), lambda t: _ops.clamp(t, min, max))

    def copy_(self, src):
        return self._in_place(_InPlace("copy_", src), lambda t: _ops.add(t * 0, src))

    def fill_(self, value):
        return self._in_place(_InPlace("fill_", value), lambda t: _ops.add(t * 0, value))

    def zero_(self):
        return self.fill_(0)

    def uniform_(self, a=0.0, b=1.0):
        draw = generator_for(self.array).uniform(a, b, self.array.shape).astype(self.dtype)
        return self._in_place(_InPlace("uniform_"), lambda t: wrap(draw))

    def normal_(self, mean=0.0, std=1.0):
        draw = (generator_for(self.array).standard_normal(self.array.shape) * std + mean).astype(self.dtype)
        return self._in_place(_InPlace("normal_"), lambda t: wrap(draw))

    def __setitem__(self, index, value):
        return self._in_place(_InPlace("setitem", value), lambda t: _ops.shape.index_put(t, index, value))

    # --- methods mirroring the functions in lamina.ops (which take PyTorch's keywords, see ops.arguments) ---
    def matmul(self, other):
        return _ops.matmul(self, other)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def sin(self):
        return _ops.sin(self)

    def cos(self):
        return _ops.cos(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def clamp(self, min=None, max=None):
        return _ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return _ops.maximum(self, other)

    def minimum(self, other):
        return _ops.minimum(self, other)

    def sum(self, *args, **kwargs):
        return _ops.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        return _ops.mean(self, *args, **kwargs)

    def var(self, *args, **kwargs):
        return _ops.var(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        return _ops.max(self, *args, **kwargs)

    def min(self, *args, **kwargs):
        return _ops.min(self, *args, **kwargs)

    def amax(self, *args, **kwargs):
        return _ops.amax(self, *args, **kwargs)

    def amin(self, *args, **kwargs):
        return _ops.amin(self, *args, **kwargs)

    def logsumexp(self, *args, **kwargs):
        return _ops.logsumexp(self, *args, **kwargs)

    def softmax(self, *args, **kwargs):
        return _ops.softmax(self, *args, **kwargs)

    def log_softmax(self, *args, **kwargs):
        return _ops.log_softmax(self, *args, **kwargs)

    def argmax(self, *args, **kwargs):
        return _ops.argmax(self, *args, **kwargs)

    def argmin(self, *args, **kwargs):
        return _ops.argmin(self, *args, **kwargs)

    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return _ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _ops.permute(self, *dims)

    @property
    def T(self):
        return _ops.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):
        return _ops.transpose(self, -2, -1)

    def squeeze(self, *args, **kwargs):
        return _ops.squeeze(self, *args, **kwargs)

    def unsqueeze(self, *args, **kwargs):
        return _ops.unsqueeze(self, *args, **kwargs)

    def expand(self, *sizes):
        return _ops.expand(self, *sizes)

    def broadcast_to(self, shape):
        return _ops.broadcast_to(self, shape)

    def split(self, split_size_or_sections, dim=0):
        return _ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.chunk(self, chunks, dim)

    def narrow(self, dim, start, length):
        """`length` entries of `dim` from `start`, as x[..., start:start + length, ...] (a differentiable slice)."""
        dim = dim + self.ndim if dim < 0 else dim
        if not 0 <= start <= start + length <= self.shape[dim]:
            raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} of size "
                             f"{self.shape[dim]}")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    # new_*: a new tensor with this one's dtype (unless given), as PyTorch's legacy factory methods
    def new_zeros(self, *size, dtype=None, requires_grad=False):
        return self._new("zeros", size, dtype, requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False):
        return self._new("ones", size, dtype, requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad=False):
        return self._new("zeros", size, dtype, requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        return self._new("full", (size,), dtype, requires_grad, fill_value)

    def new_tensor(self, data, dtype=None, requires_grad=False):
        array = np.array(data._host_array() if isinstance(data, Tensor) else data, dtype=dtype or self.dtype)
        return wrap(get_array_module(self.array).asarray(array), requires_grad=requires_grad)

    def _new(self, fill, size, dtype, requires_grad, *value):
        """A new tensor on this one's device: xp.zeros / ones / full of `size`."""
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        make = getattr(get_array_module(self.array), fill)
        return wrap(make(shape, *value, dtype=dtype or self.dtype), requires_grad=requires_grad)

    def gather(self, dim, index):
        return _ops.gather(self, dim, index)

    # the function forms as methods, as PyTorch code calls them
    def add(self, other, alpha=1):
        return _ops.add(self, other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return _ops.sub(self, other if alpha == 1 else other * alpha)

    def mul(self, other):
        return _ops.mul(self, other)

    def div(self, other, *, rounding_mode=None):
        return _ops.div(self, other) if rounding_mode is None else _ops.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def mm(self, other):
        if self.ndim != 2 or getattr(other, "ndim", 2) != 2:
            raise ValueError(f"mm: both operands must be 2-D, got shapes {self.shape} and {other.shape}")
        return _ops.matmul(self, other)

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}; use transpose")
        return _ops.permute(self, *reversed(range(self.ndim)))

    def eq(self, other):
        return _ops.eq(self, other)

    def ne(self, other):
        return _ops.ne(self, other)

    def lt(self, other):
        return _ops.lt(self, other)

    def le(self, other):
        return _ops.le(self, other)

    def gt(self, other):
        return _ops.gt(self, other)

    def ge(self, other):
        return _ops.ge(self, other)

    def log10(self):
        return _ops.log10(self)

    def log1p(self):
        return _ops.log1p(self)

    def expm1(self):
        return _ops.expm1(self)

    def std(self, *args, **kwargs):
        return _ops.std(self, *args, **kwargs)

    def norm(self, *args, **kwargs):
        return _ops.norm(self, *args, **kwargs)

    def tril(self, diagonal=0):
        return _ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return _ops.triu(self, diagonal)

    def roll(self, shifts, dims=None):
        return _ops.roll(self, shifts, dims)

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return self._in_place(_InPlace("masked_fill_", value), lambda t: _ops.masked_fill(t, mask, value))

    # --- issue 12: the rest of PyTorch's common Tensor methods ------------------------------------------------
    def _calls(name):
        """A method that calls lamina's function `name` with this tensor first (its PyTorch keywords included)."""

        def method(self, *args, **kwargs):
            return getattr(_ops, name)(self, *args, **kwargs)

        method.__name__ = method.__qualname__ = name
        method.__doc__ = f"x.{name}(...) is lamina.{name}(x, ...)."
        return method

    all, any, prod, cumsum, cumprod = _calls("all"), _calls("any"), _calls("prod"), _calls("cumsum"), _calls("cumprod")
    count_nonzero, bincount, unique = _calls("count_nonzero"), _calls("bincount"), _calls("unique")
    sort, argsort, topk, kthvalue = _calls("sort"), _calls("argsort"), _calls("topk"), _calls("kthvalue")
    median, mode, cummax, cummin = _calls("median"), _calls("mode"), _calls("cummax"), _calls("cummin")
    floor, ceil, trunc, round, frac = _calls("floor"), _calls("ceil"), _calls("trunc"), _calls("round"), _calls("frac")
    sign, sgn, isnan, isinf = _calls("sign"), _calls("sgn"), _calls("isnan"), _calls("isinf")
    isfinite = _calls("isfinite")
    neg = negative = _calls("neg")
    reciprocal, rsqrt, square = _calls("reciprocal"), _calls("rsqrt"), _calls("square")
    sinh, cosh, tan, asin, acos = _calls("sinh"), _calls("cosh"), _calls("tan"), _calls("asin"), _calls("acos")
    atan, atan2, arctan2, log2, exp2 = _calls("atan"), _calls("atan2"), _calls("atan2"), _calls("log2"), _calls("exp2")
    clamp_min, clamp_max, lerp = _calls("clamp_min"), _calls("clamp_max"), _calls("lerp")
    addcmul, addcdiv, nan_to_num = _calls("addcmul"), _calls("addcdiv"), _calls("nan_to_num")
    remainder, fmod, floor_divide = _calls("remainder"), _calls("fmod"), _calls("floor_divide")
    float_power, true_divide, divide = _calls("float_power"), _calls("div"), _calls("div")
    multiply, subtract = _calls("mul"), _calls("subtract")
    greater, greater_equal, less, less_equal = _calls("gt"), _calls("ge"), _calls("lt"), _calls("le")
    not_equal, absolute = _calls("ne"), _calls("abs")
    logical_and, logical_or, logical_xor = _calls("logical_and"), _calls("logical_or"), _calls("logical_xor")
    logical_not, bitwise_not = _calls("logical_not"), _calls("bitwise_not")
    isclose, allclose, equal = _calls("isclose"), _calls("allclose"), _calls("equal")
    nonzero, argwhere, masked_select = _calls("nonzero"), _calls("argwhere"), _calls("masked_select")
    bmm, baddbmm, addmm, addmv = _calls("bmm"), _calls("baddbmm"), _calls("addmm"), _calls("addmv")
    dot, outer, ger, mv = _calls("dot"), _calls("outer"), _calls("outer"), _calls("mv")
    diag, trace, diff = _calls("diag"), _calls("trace"), _calls("diff")
    index_select, scatter, scatter_add, index_add = (_calls("index_select"), _calls("scatter"), _calls("scatter_add"),
                                                     _calls("index_add"))
    repeat_interleave, unbind, select = _calls("repeat_interleave"), _calls("unbind"), _calls("select")
    movedim, moveaxis, swapaxes, swapdims = _calls("movedim"), _calls("movedim"), _calls("swapaxes"), _calls("swapaxes")
    rot90, fliplr, flipud, ravel = _calls("rot90"), _calls("fliplr"), _calls("flipud"), _calls("ravel")
    bernoulli = _calls("bernoulli")
    del _calls

    def flip(self, *dims):
        return _ops.flip(self, dims[0] if len(dims) == 1 else dims)

    def tile(self, *dims):
        return _ops.tile(self, dims[0] if len(dims) == 1 else dims)

    def repeat(self, *sizes):
        """This tensor repeated sizes[i] times along each dim, as torch.Tensor.repeat (numpy's tile)."""
        return _ops.arrange.repeat(self, *sizes)

    def where(self, condition, other):
        """self where condition holds, else other."""
        return _ops.where(condition, self, other)

    def type_as(self, other):
        return self.to(other.dtype)

    def expand_as(self, other):
        return _ops.expand(self, *other.shape)

    def reshape_as(self, other):
        return _ops.reshape(self, other.shape)

    def bool(self):
        return _ops.cast(self, np.bool_)

    def half(self):
        raise TypeError("half(): lamina computes in float32 and float64; float16 tensors are not supported")

    def is_floating_point(self):
        return self.array.dtype.kind == "f"

    def ndimension(self):
        return self.array.ndim

    def is_contiguous(self, memory_format=None):
        return True  # as contiguous() says: every tensor is ready for its next op

    def element_size(self):
        return self.array.itemsize

    @property
    def itemsize(self):
        return self.array.itemsize

    @property
    def nbytes(self):
        return self.array.nbytes

    def stride(self, dim=None):
        """Steps between elements, counted in elements, as PyTorch counts them."""
        steps = tuple(s // self.array.itemsize for s in self.array.strides)
        return steps if dim is None else steps[dim]

    # operators PyTorch defines on tensors: % and // (Python's rounding), & | ^ ~ (bitwise; logical on bools)
    def __mod__(self, other):
        return _ops.remainder(self, other)

    def __rmod__(self, other):
        return _ops.remainder(as_operand(other, like=self), self)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.floor_divide(as_operand(other, like=self), self)

    def __and__(self, other):
        return _ops.bitwise_and(self, other)

    def __or__(self, other):
        return _ops.bitwise_or(self, other)

    def __xor__(self, other):
        return _ops.bitwise_xor(self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        return _ops.bitwise_not(self)

    # in place: the function's result written into this tensor (see _in_place)
    def _apply_(self, name, fn, operand=None):
        return self._in_place(_InPlace(name, operand), fn)

    def scatter_(self, dim, index, src=None, **kwargs):
        return self._apply_("scatter_", lambda t: _ops.scatter(t, dim, index, src, **kwargs), src)

    def scatter_add_(self, dim, index, src):
        return self._apply_("scatter_add_", lambda t: _ops.scatter_add(t, dim, index, src), src)

    def index_add_(self, dim, index, source, *, alpha=1):
        return self._apply_("index_add_", lambda t: _ops.index_add(t, dim, index, source, alpha=alpha), source)

    def bernoulli_(self, p=0.5, *, generator=None):
        draws = _ops.bernoulli(self, p, generator=generator)
        return self._apply_("bernoulli_", lambda t: draws)

    def neg_(self):
        return self._apply_("neg_", _ops.neg)

    def abs_(self):
        return self._apply_("abs_", _ops.abs)

    def exp_(self):
        return self._apply_("exp_", _ops.exp)

    def log_(self):
        return self._apply_("log_", _ops.log)

    def sqrt_(self):
        return self._apply_("sqrt_", _ops.sqrt)

    def sigmoid_(self):
        return self._apply_("sigmoid_", _ops.sigmoid)

    def tanh_(self):
        return self._apply_("tanh_", _ops.tanh)

    def relu_(self):
        return self._apply_("relu_", _ops.relu)

    def floor_(self):
        return self._apply_("floor_", _ops.floor)

    def round_(self, decimals=0):
        return self._apply_("round_", lambda t: _ops.round(t, decimals=decimals))

    def pow_(self, exponent):
        return self._apply_("pow_", lambda t: _ops.pow(t, exponent), exponent)

    def clamp_min_(self, min):
        return self._apply_("clamp_min_", lambda t: _ops.clamp(t, min=min))

    def clamp_max_(self, max):
        return self._apply_("clamp_max_", lambda t: _ops.clamp(t, max=max))

    def lerp_(self, end, weight):
        return self._apply_("lerp_", lambda t: _ops.lerp(t, end, weight), end)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        operand = tensor1 if isinstance(tensor1, Tensor) and tensor1.requires_grad else tensor2
        return self._apply_("addcmul_", lambda t: _ops.addcmul(t, tensor1, tensor2, value=value), operand)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        operand = tensor1 if isinstance(tensor1, Tensor) and tensor1.requires_grad else tensor2
        return self._apply_("addcdiv_", lambda t: _ops.addcdiv(t, tensor1, tensor2, value=value), operand)

    def logical_not_(self):
        return self._apply_("logical_not_", _ops.logical_not)

    # hooks on the gradient
    def register_hook(self, hook):
        """Call hook(grad) with this tensor's gradient each time backward computes it; a tensor it returns is
        used in its place. Returns a handle whose remove() takes the hook off.

        >>> x = lamina.ones(2, requires_grad=True)
        >>> handle = x.register_hook(lambda g: g * 10)
        >>> (x * 3).sum().backward(); x.grad.tolist()
        [30.0, 30.0]
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            hooks = _leaf_hooks.get(id(self))
            if hooks is None:  # kept by id: a dict keyed by tensors would compare them with their elementwise ==
                hooks = _leaf_hooks[id(self)] = {}
                weakref.finalize(self, _leaf_hooks.pop, id(self), None)
        else:
            if self.grad_fn.hooks is None:
                self.grad_fn.hooks = {}
            hooks = self.grad_fn.hooks
        return RemovableHandle(hooks, hook)

    @property
    def retains_grad(self):
        """Whether retain_grad() was called on this non-leaf tensor (a leaf keeps its .grad anyway: False)."""
        fn = self.grad_fn
        return fn is not None and fn.retained is not None and fn.retained() is self


_leaf_hooks = {}  # id(leaf tensor) -> its gradient hooks {key: hook}; the entry goes with the tensor


class RemovableHandle:
    """What register_hook returns: remove() takes the hook off again."""

    _next_key = 0

    def __init__(self, hooks, hook):
        self.hooks, self.key = hooks, RemovableHandle._next_key
        RemovableHandle._next_key += 1
        hooks[self.key] = hook

    def remove(self):
        self.hooks.pop(self.key, None)


def _run_hooks(hooks, g):
    """g passed through each hook in the order they were registered; a hook returning a tensor replaces g."""
    for hook in list(hooks.values()):
        result = hook(g)
        if result is not None:
            g = as_operand(result)
    return g


class _InPlace:
    """Which in-place op, and whether its operand needs the graph recorded (a tensor requiring grad)."""

    def __init__(self, name, operand=None):
        self.name = name
        self.needs_graph = isinstance(operand, Tensor) and operand.requires_grad


_TYPE_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
               "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


_new = object.__new__
_array_of, _requires_grad_of = operator.attrgetter("array"), operator.attrgetter("requires_grad")


def _refuse_mixed_devices(op, tensors):
    """One clear error when an op's inputs live on different devices (checked only once the op has failed)."""
    devices = list(dict.fromkeys(device_of(t.array) for t in tensors if isinstance(t, Tensor)))
    if len(devices) > 1:
        raise RuntimeError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                           f"{devices[0]} and {devices[1]}")


def wrap(array, requires_grad=False):
    """A tensor around `array` as it is: no copy, no dtype conversion (what ops use for their results)."""
    t = _new(Tensor)
    t.array = array
    t.grad = None
    t.grad_fn = None
    t.requires_grad = False
    return t.requires_grad_() if requires_grad else t


class record_ops:
    """Context manager: call `recorder(function, inputs, output)` for every op that runs inside, grad mode or not.

    >>> import lamina
    >>> seen = []
    >>> with lamina.autograd.record_ops(lambda fn, inputs, out: seen.append(fn.name)):
    ...     _ = lamina.ones(2) * 3 + 1
    >>> seen
    ['mul', 'add']
    """

    def __init__(self, recorder):
        self.recorder = recorder

    def __enter__(self):
        _Mode.recorders = [*_Mode.recorders, self.recorder]
        return self

    def __exit__(self, *exc):
        _Mode.recorders = [r for r in _Mode.recorders if r is not self.recorder]


def recording():
    """True inside `record_ops`: ops computed outside Function.__call__ should then call `record`."""
    return bool(_Mode.recorders)


def record(function, inputs, output):
    """Show every active `record_ops` recorder an op that ran outside Function.__call__.

    Comparisons and argmax give results outside the graph (no grad_fn), but a
    traced model (ONNX export) still has to see them.
    """
    for recorder in _Mode.recorders:
        recorder(function, inputs, output)


def as_operand(value, like=None):
    """`value` as a Tensor; a Python number takes the dtype of `like` as PyTorch does."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)):
        dtype = like.array.dtype
        if isinstance(value, float) and dtype.kind not in "fc":
            dtype = default_float
        return wrap(get_array_module(like.array).asarray(value, dtype=dtype))
    return wrap(as_array(value))


# PyTorch's names for the graph nodes of the lamina ops that it names differently (the rest are NameBackward0)
_TORCH_NODE_NAMES = {
    "ReLU": "ReluBackward0", "Linear": "AddmmBackward0", "MatMul": "MmBackward0", "Reshape": "ViewBackward0",
    "CrossEntropy": "NllLossBackward0", "BCEWithLogits": "BinaryCrossEntropyWithLogitsBackward0",
    "Conv2d": "ConvolutionBackward0", "MaxPool": "MaxPool2DWithIndicesBackward0", "Pow": "PowBackward1",
    "PowConstant": "PowBackward0", "LayerNorm": "NativeLayerNormBackward0", "BroadcastTo": "ExpandBackward0",
    "Cast": "ToCopyBackward0", "SumTo": "SumBackward1", "Amax": "AmaxBackward0", "LSTMSequence": "LstmBackward0",
    "GRUSequence": "GruBackward0", "RNNSequence": "RnnTanhBackward0", "CTCLoss": "CtcLossBackward0",
    "ToDevice": "ToCopyBackward0",
}


class Function:
    """One differentiable op: `forward` on arrays, `backward` in lamina ops.

    Calling an instance on tensors runs forward and, when grad mode is on and an
    input requires grad, records the op in the output's `grad_fn`. An op keeps for
    backward only what its class lists in `saved` (as `save_for_backward` does in
    PyTorch): "inputs" keeps the input tensors as `self.inputs`, "output" keeps the
    result array so that `self.output` can hand it back as a tensor. Ops that need
    neither read `self.input_shapes`. `needs_input_grad[i]` says whether input i
    wants a gradient; backward returns None where it does not.
    """

    saved = ("inputs",)
    keeps_inputs, keeps_output = True, False  # `saved`, read once per class rather than once per call
    inputs = None
    input_versions = None  # the saved inputs' versions, once any tensor has been changed in place
    output_writes = None  # the output's shared write count, once a view of the output exists (keeps_output ops)
    output_writes_seen = 0
    recorded_at = 0  # _Mode.inplace_count when the op ran: while it is unchanged, no saved tensor can have changed
    output_changed = False
    generation = 0
    retained = None
    hooks = None  # the gradient hooks registered on this op's output tensor (Tensor.register_hook)
    released = False

    def __call__(self, *inputs):
        try:
            y = self.forward(*map(_array_of, inputs))  # map, not a list: no list built on the hottest path
        except (ValueError, IndexError, TypeError) as e:
            _refuse_mixed_devices(self.name, inputs)
            shapes = ", ".join(str(x.shape) for x in inputs)
            raise type(e)(f"{self.name}: {e} (input shapes {shapes})") from None
        if isinstance(y, np.generic):  # NumPy turns 0-d results into scalars; keep arrays throughout
            y = np.asarray(y)
        out = _new(Tensor)  # what wrap does, inlined on the hottest path
        out.array = y
        out.grad = out.grad_fn = None
        out.requires_grad = False
        if y.base is not None:  # perhaps a view of an input: then the two count in-place writes together
            _share_writes_with_views(out, inputs)
        if _Mode.grad_enabled and True in map(_requires_grad_of, inputs):
            # Where each input's gradient goes: the op that made it, the leaf itself, or nowhere.
            # Holding these rather than the input tensors lets intermediate results be freed.
            # The op runs after every op that made an input (generation: one more than the latest).
            self.edges = edges = []
            latest = 0
            for x in inputs:
                edge = x.grad_fn
                if edge is not None:
                    if edge.generation > latest:
                        latest = edge.generation
                elif x.requires_grad:
                    edge = x  # a leaf: generation 0
                edges.append(edge)
            self.generation = latest + 1
            self.out_shape, self.out_dtype = y.shape, y.dtype
            if _Mode.inplace_count:
                self.recorded_at = _Mode.inplace_count
            if self.keeps_inputs:
                self.inputs = inputs
                if _Mode.inplace_count:
                    self.input_versions = [x._version for x in inputs]
            else:
                self.input_shapes = [x.array.shape for x in inputs]
            if self.keeps_output:
                self._output_data = y
            out.requires_grad = True
            out.grad_fn = self
        if _Mode.anomaly:
            _check_finite(y, f"{self.name} returned non-finite values in its forward output")
        if _Mode.recorders:
            record(self, inputs, out)
        return out

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.keeps_inputs, cls.keeps_output = "inputs" in cls.saved, "output" in cls.saved

    @classmethod
    def apply(cls, *args):
        """Run a PyTorch-style Function: `@staticmethod forward(ctx, ...)` and `backward(ctx, *grads)`.

        >>> class Square(lamina.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_for_backward(x)
        ...         return x * x
        ...     @staticmethod
        ...     def backward(ctx, grad):
        ...         (x,) = ctx.saved_tensors
        ...         return 2 * x * grad
        >>> x = lamina.tensor([3.0], requires_grad=True)
        >>> Square.apply(x).backward(lamina.ones(1)); x.grad.tolist()
        [6.0]
        """
        if not isinstance(cls.__dict__.get("forward", None), staticmethod):
            raise TypeError(f"{cls.__name__}.apply is for Functions written the PyTorch way, with "
                            "@staticmethod forward(ctx, ...) and backward(ctx, grad); call an instance instead")
        return _apply_custom(cls, args)

    @property
    def name(self):
        return type(self).__name__.lower()

    @property
    def node_name(self):
        """PyTorch's name for this node of the graph (`AddBackward0`), as a tensor's `grad_fn=<...>` prints it."""
        name = type(self).__name__
        return _TORCH_NODE_NAMES.get(name, f"{name}Backward0")

    @property
    def next_functions(self):
        """Where each input's gradient goes, as PyTorch shows it: (op, 0), (AccumulateGrad, 0) or (None, 0)."""
        return tuple((edge if edge is None or isinstance(edge, Function) else AccumulateGrad(edge), 0)
                     for edge in self.edges)

    @property
    def needs_input_grad(self):
        return tuple([edge is not None for edge in self.edges])

    @property
    def output(self):
        """The output as a tensor whose grad_fn is this op (so second derivatives flow through it)."""
        out = wrap(self._output_data)
        out.requires_grad, out.grad_fn = True, self
        return out

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def release(self):
        """Drop what backward needed, so the graph's memory goes back now."""
        self.inputs = self._output_data = None
        self.released = True

    def __repr__(self):
        return f"<{self.node_name} object at {id(self):#x}>"


class AccumulateGrad:
    """What `next_functions` shows for a leaf: its gradient is added to `variable.grad`."""

    def __init__(self, variable):
        self.variable = variable

    next_functions = ()

    node_name = "AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"


def _memory_root(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _share_writes_with_views(view, inputs):
    """A view and the tensor whose memory it shows share one write count, so an in-place write through either
    is seen by the ops that saved the other (PyTorch's rule)."""
    root = _memory_root(view.array)
    for x in inputs:
        if isinstance(x.array, np.ndarray) and _memory_root(x.array) is root:
            writes = view._writes = x._shared_writes()
            fn = x.grad_fn
            if fn is not None and fn.keeps_output and fn.output_writes is None:
                fn.output_writes, fn.output_writes_seen = writes, writes.count
            return


def _check_versions(fn):
    """Refuse to backward through an op whose saved tensors were changed in place since it ran."""
    changed = fn.output_changed
    if fn.keeps_inputs and fn.inputs is not None:
        versions = fn.input_versions or [0] * len(fn.inputs)
        changed = changed or any(x._version != v for x, v in zip(fn.inputs, versions))
    if fn.output_writes is not None:  # a view of the output was written in place
        changed = changed or fn.output_writes.count != fn.output_writes_seen
    if changed:
        raise RuntimeError(f"one of the tensors that {fn.name} saved for its backward was changed by an in-place "
                           "operation after it ran; make a copy (.clone()) before changing it, or change it "
                           "out of place")


def _check_finite(array, message):
    xp = get_array_module(array)
    if array.dtype.kind in "fc" and not bool(xp.isfinite(array).all()):
        raise RuntimeError(f"detect_anomaly: {message}")


def _accumulate(old, new):
    return new if old is None else old + new


_after_backward = []  # callables run once when the next backward() finishes (data-parallel gradient sync)


def call_after_backward(fn):
    """Run fn() once, right after the next `backward()` has filled every `.grad`."""
    _after_backward.append(fn)


def _add_gradients(old, g, owned):
    """old + g: two gradients of one tensor, of one shape and dtype, outside create_graph. Written into old's
    array when this walk allocated it (`owned`, id -> array: nothing else holds it), else into a new array
    that the walk then owns, so that a tensor used many times costs one allocation, not one per use."""
    array = old.array
    if id(array) in owned:
        array += g.array
        return old
    array = array + g.array
    if isinstance(array, np.generic):  # NumPy's sum of two 0-d arrays is a scalar, which += would not change
        array = np.asarray(array)
    owned[id(array)] = array
    return wrap(array)


def _store_leaf_grad(leaf, g, create_graph, stored, owned):
    if create_graph:
        leaf.grad = _accumulate(leaf.grad, g)
    elif leaf.grad is not None:
        leaf.grad = _add_gradients(leaf.grad, g, owned)
    else:
        # .grad must be writable, contiguous and its own: optimizers update it in place
        array = g.array
        owner = array if array.base is None else array.base
        flags = array.flags
        if id(owner) in stored or not flags.c_contiguous or not getattr(flags, "writeable", True):
            array = array.copy()
            owner = owned[id(array)] = array
        stored.add(id(owner))
        leaf.grad = wrap(array)


def run_backward(outputs, grad_outputs, retain_graph=False, create_graph=False, inputs=None):
    """Walk the graph from `outputs` back to the leaves.

    Functions are taken from a heap, latest generation first, so each runs
    once, after every consumer of its output has added its share of the
    gradient. With `inputs` given, their gradients are returned instead of
    being accumulated into `.grad`.
    """
    captured = wanted_fns = None
    if inputs is not None:
        captured = {id(t): None for t in inputs}
        wanted_fns = {t.grad_fn: id(t) for t in inputs if t.grad_fn is not None}
    grads = {}  # Function -> the gradient of its output, summed over its consumers so far
    heap = []  # (-generation, id, Function): latest first; id breaks ties without comparing Functions
    stored = set()  # arrays already placed in some leaf's .grad during this walk
    owned = {}  # sums this walk allocated and nothing else holds: later gradients are added in place

    def add(old, g):
        return old + g if create_graph else _add_gradients(old, g, owned)

    hooked = {}  # id(leaf) -> (leaf, its gradient so far): leaves with hooks get their whole gradient at the end

    def deliver(leaf, g):
        if captured is None:
            _store_leaf_grad(leaf, g, create_graph, stored, owned)
        elif id(leaf) in captured:
            old = captured[id(leaf)]
            captured[id(leaf)] = g if old is None else add(old, g)

    def send(edge, g, is_op):  # edge: the Function that made a tensor, or a leaf tensor
        if not is_op:
            if _leaf_hooks and id(edge) in _leaf_hooks:
                hooked[id(edge)] = (edge, _accumulate(hooked[id(edge)][1] if id(edge) in hooked else None, g))
            else:
                deliver(edge, g)
        elif edge in grads:
            grads[edge] = add(grads[edge], g)
        else:
            grads[edge] = g
            heappush(heap, (-edge.generation, id(edge), edge))

    for out, g in zip(outputs, grad_outputs):
        g = as_operand(g, like=out)
        if g.array.shape != out.array.shape:
            raise RuntimeError(f"backward(): gradient has shape {g.shape}, but the output has shape {out.shape}")
        send(out.grad_fn or out, g, out.grad_fn is not None)

    done = []
    previous, _Mode.grad_enabled = _Mode.grad_enabled, create_graph
    try:
        while heap:
            fn = heappop(heap)[2]
            gy = grads.pop(fn)
            if owned:  # from here on hooks and backward may pass gy on, to be held elsewhere
                owned.pop(id(gy.array), None)
            if fn.hooks:
                gy = _run_hooks(fn.hooks, gy)
            if fn.released:
                raise RuntimeError(
                    f"backward through {fn.name} a second time: its graph was freed by the first backward; "
                    "pass retain_graph=True to the first call if you need to backward twice"
                )
            if fn.retained is not None and fn.retained() is not None:
                kept = fn.retained()
                kept.grad = _accumulate(kept.grad, gy if create_graph else gy.detach())
            if wanted_fns and fn in wanted_fns:
                key = wanted_fns[fn]
                captured[key] = _accumulate(captured[key], gy)
            if _Mode.inplace_count != fn.recorded_at:  # something was changed in place since fn ran
                _check_versions(fn)
            if _Mode.anomaly:
                try:
                    grads_in = fn.backward(gy)
                except RuntimeError as e:
                    raise RuntimeError(f"{e}, while computing {fn.name} backward") from None
            else:
                grads_in = fn.backward(gy)
            if type(grads_in) is not tuple:
                grads_in = (grads_in,)
            for edge, gx in zip(fn.edges, grads_in):
                if edge is None or gx is None:
                    continue
                is_op = isinstance(edge, Function)
                if is_op:
                    shape, dtype = edge.out_shape, edge.out_dtype
                else:
                    shape, dtype = edge.array.shape, edge.array.dtype
                g_data = gx.array
                if g_data.dtype != dtype:
                    gx = _ops.cast(gx, dtype)
                if g_data.shape != shape:
                    raise RuntimeError(f"{fn.name} backward returned shape {gx.shape} for an input of shape {shape}")
                if _Mode.anomaly:
                    _check_finite(g_data, f"{fn.name} backward returned non-finite values in its gradient")
                if not is_op:
                    if captured is None and not _leaf_hooks:
                        _store_leaf_grad(edge, gx, create_graph, stored, owned)
                    else:
                        send(edge, gx, False)  # where hooks or grad()'s inputs are looked up
                elif edge in grads:
                    grads[edge] = add(grads[edge], gx)
                else:  # what send does, inlined: once per op in every backward
                    grads[edge] = gx
                    heappush(heap, (-edge.generation, id(edge), edge))
            done.append(fn)
        for leaf, g in hooked.values():
            deliver(leaf, _run_hooks(_leaf_hooks.get(id(leaf), {}), g))
    finally:
        _Mode.grad_enabled = previous
    if not retain_graph:
        for fn in done:
            fn.release()
    if captured is None:
        while _after_backward:
            _after_backward.pop(0)()
    return captured


def zero_grad(tensors, set_to_none=True):
    """Reset the `.grad` of each tensor: to None (the default, as in PyTorch), or to zeros in place."""
    for t in tensors:
        if set_to_none or t.grad is None:
            t.grad = None
        else:
            t.grad.array[...] = 0


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Return d(outputs)/d(inputs) as a tuple, without touching any `.grad`."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    seeds = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError(f"grad(): an output of shape {out.shape} does not require grad")
        if g is None:
            if out.array.size != 1:
                raise RuntimeError(f"grad(): grad_outputs is needed for the non-scalar output of shape {out.shape}")
            g = wrap(get_array_module(out.array).ones_like(out.array))
        seeds.append(g)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad(): input {i} (shape {t.shape}) does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    captured = run_backward(outputs, seeds, retain_graph, create_graph, inputs=inputs)
    result = tuple(captured[id(t)] for t in inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad(): input {i} (shape {inputs[i].shape}) was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
    return result


def _legacy_shape(sizes):
    if not all(type(n) is int for n in sizes):
        raise TypeError(f"Tensor(*sizes): sizes must be ints, got {sizes}; pass data as one list or array")
    return sizes


class _VariableType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableType):
    """PyTorch's pre-0.4 wrapper, as PyTorch keeps it: Variable(t) is a tensor sharing t's memory, cut from
    t's graph, requiring grad if asked; every tensor is a Variable.

    >>> v = lamina.autograd.Variable(lamina.ones(2), requires_grad=True)
    >>> v.requires_grad, isinstance(lamina.ones(1), lamina.autograd.Variable)
    (True, True)
    """

    def __new__(cls, data, requires_grad=False, volatile=False):
        t = wrap(data.array if isinstance(data, Tensor) else as_array(data))
        return t.requires_grad_() if requires_grad else t


class FunctionCtx:
    """What a PyTorch-style Function's forward hands its backward: saved tensors and any attribute."""

    saved_tensors = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        pass  # outputs that are integers or comparisons get no gradient anyway


def once_differentiable(backward):
    """PyTorch's marker for a backward not written in differentiable ops; every custom Function here is so."""
    return backward


class _CustomCall(Function):
    """A PyTorch-style Function run as one op: its outputs travel as one flat array (one output per op).

    Its backward is the user's, called on plain tensors, so it is differentiable once: backward with
    create_graph=True through it raises rather than silently dropping second-order terms.
    """

    saved = ()

    def __init__(self, cls, args, ctx):
        self.cls, self.args, self.ctx = cls, args, ctx

    @property
    def name(self):
        return self.cls.__name__

    @property
    def node_name(self):
        return f"{self.cls.__name__}Backward"  # PyTorch's name for a custom Function's node

    def __repr__(self):
        return f"<{self.node_name} object at {id(self):#x}>"

    def forward(self, *arrays):
        given = iter(arrays)
        call_args = [wrap(next(given)) if isinstance(a, Tensor) else a for a in self.args]
        with no_grad():
            result = self.cls.forward(self.ctx, *call_args)
        outputs = result if isinstance(result, tuple) else (result,)
        if not all(isinstance(o, Tensor) for o in outputs):
            raise TypeError(f"{self.cls.__name__}.forward must return a tensor or a tuple of tensors")
        self.several = isinstance(result, tuple)
        self.shapes = [o.shape for o in outputs]
        if not self.several:
            return outputs[0].array
        dtypes = {o.dtype for o in outputs}
        if len(dtypes) > 1:
            raise TypeError(f"{self.cls.__name__}.forward returned outputs of several dtypes "
                            f"{sorted(map(str, dtypes))}; lamina's custom Functions need one")
        xp = get_array_module(outputs[0].array)
        return xp.concatenate([o.array.reshape(-1) for o in outputs])

    def backward(self, gy):
        name = self.cls.__name__
        if _Mode.grad_enabled:
            raise RuntimeError(f"{name} is differentiable once: its backward is not recorded, so "
                               "backward(create_graph=True) through it is not supported")
        if self.several:
            bounds = np.cumsum([0] + [int(np.prod(shape)) for shape in self.shapes]).tolist()
            grads = [wrap(gy.array[a:b].reshape(shape)) for a, b, shape in zip(bounds, bounds[1:], self.shapes)]
        else:
            grads = [gy]
        result = self.cls.backward(self.ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        if len(result) != len(self.args):
            raise RuntimeError(f"{name}.backward returned {len(result)} gradients for {len(self.args)} inputs "
                               "of forward (return None for inputs that get none)")
        return tuple(g if g is None else as_operand(g) for g, a in zip(result, self.args) if isinstance(a, Tensor))


def _apply_custom(cls, args):
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        raise TypeError(f"{cls.__name__}.apply needs at least one tensor argument")
    ctx = FunctionCtx()
    ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad and _Mode.grad_enabled for a in args)
    call = _CustomCall(cls, args, ctx)
    flat = call(*tensors)
    if not call.several:
        return flat
    outputs, start = [], 0
    for shape in call.shapes:
        size = int(np.prod(shape))
        outputs.append(_ops.reshape(flat[start:start + size], shape))
        start += size
    return tuple(outputs)


from lamina import ops as _ops  # noqa: E402  (ops subclass Function, defined above)
