"""Tensor, Function, and the backward walk: lamina's reverse-mode autograd.

A Function's `forward` works on raw arrays; its `backward` is written with
lamina's own ops, so that running it with grad mode on (create_graph=True)
records a graph of the gradient itself, and second derivatives come for free.
Every Function has exactly one output; ops with several results (split, max
with indices) are built from single-output ones.
"""

import functools
import heapq
import weakref

import numpy as np

from lamina.backend import as_array, default_float, get_array_module


class _Mode:
    grad_enabled = True
    anomaly = False
    recorders = []  # callables handed (function, inputs, output) for every op that runs (ONNX export traces this way)


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


class Tensor:
    """An array with an optional gradient and a record of the op that made it."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "__weakref__")
    __array_ufunc__ = None  # numpy defers `array * tensor` to Tensor.__rmul__
    __hash__ = object.__hash__  # == is elementwise, yet tensors stay usable as dict keys

    def __init__(self, data, dtype=None, requires_grad=False):
        self.data = data if dtype is None and type(data) is np.ndarray else as_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    # --- properties -------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return self.data.size

    def dim(self):
        return self.data.ndim

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # --- conversion -------------------------------------------------------------------------
    def numpy(self):
        return self.data

    def __array__(self, dtype=None, copy=None):
        array = self.data if get_array_module(self.data) is np else self.data.get()
        return array if dtype is None else array.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): tensor of shape {self.shape} has {self.data.size} elements, not 1")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def detach(self):
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating point tensors can require gradients, not {self.data.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def to(self, dtype):
        return _ops.cast(self, dtype)

    def float(self):
        return _ops.cast(self, np.float32)

    def double(self):
        return _ops.cast(self, np.float64)

    def long(self):
        return _ops.cast(self, np.int64)

    def __repr__(self):
        body = np.array2string(np.asarray(self), separator=", ", prefix="tensor(")
        extra = f", dtype={self.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{type(self.grad_fn).__name__}Backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # --- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`."""
        if not self.requires_grad:
            raise RuntimeError("backward(): tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs, "
                    f"but this tensor has shape {self.shape}; pass `gradient`"
                )
            gradient = _make(get_array_module(self.data).ones_like(self.data))
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
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

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

    # --- methods mirroring the functions in lamina.ops ---------------------------------------
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

    def sum(self, dim=None, keepdim=False):
        return _ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _ops.mean(self, dim, keepdim)

    def var(self, dim=None, *, correction=1, keepdim=False):
        return _ops.var(self, dim, correction=correction, keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        return _ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _ops.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.amin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return _ops.logsumexp(self, dim, keepdim)

    def softmax(self, dim):
        return _ops.softmax(self, dim)

    def log_softmax(self, dim):
        return _ops.log_softmax(self, dim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.argmin(self, dim, keepdim)

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

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def expand(self, *sizes):
        return _ops.expand(self, *sizes)

    def broadcast_to(self, shape):
        return _ops.broadcast_to(self, shape)

    def split(self, split_size_or_sections, dim=0):
        return _ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.chunk(self, chunks, dim)

    def gather(self, dim, index):
        return _ops.gather(self, dim, index)


_new = object.__new__


def wrap(array):
    """A tensor around `array` as it is: no copy, no dtype conversion (what ops use for their results)."""
    t = _new(Tensor)
    t.data = array
    t.grad = None
    t.grad_fn = None
    t.requires_grad = False
    return t


_make = wrap  # the old private name, until every module calls wrap


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


def as_tensor(value, like=None):
    """`value` as a Tensor; a Python number takes the dtype of `like` as PyTorch does."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)):
        dtype = like.data.dtype
        if isinstance(value, float) and dtype.kind not in "fc":
            dtype = default_float
        return _make(get_array_module(like.data).asarray(value, dtype=dtype))
    return Tensor(value)


class Function:
    """One differentiable op: `forward` on arrays, `backward` in lamina ops.

    Calling an instance on tensors runs forward and, when grad mode is on and an
    input requires grad, records the op in the output's `grad_fn`. Inside
    `backward`, `self.inputs` are the input tensors and `self.output` the output.
    `needs_input_grad[i]` says whether input i wants a gradient; backward returns
    None where it does not.
    """

    inputs = None
    generation = 0
    retained = None
    released = False

    def __call__(self, *inputs):
        try:
            y = self.forward(*[x.data for x in inputs])
        except (ValueError, IndexError, TypeError) as e:
            shapes = ", ".join(str(x.shape) for x in inputs)
            raise type(e)(f"{self.name}: {e} (input shapes {shapes})") from None
        if isinstance(y, np.generic):  # NumPy turns 0-d results into scalars; keep arrays throughout
            y = np.asarray(y)
        out = _new(Tensor)  # what _make does, inlined on the hottest path
        out.data = y
        out.grad = out.grad_fn = None
        out.requires_grad = False
        if _Mode.grad_enabled:
            needs = tuple([x.requires_grad for x in inputs])
            if True in needs:
                self.inputs = inputs
                self.needs_input_grad = needs
                generation = 0
                for x in inputs:
                    if x.grad_fn is not None and x.grad_fn.generation > generation:
                        generation = x.grad_fn.generation
                self.generation = generation + 1
                self._output = weakref.ref(out)
                out.requires_grad = True
                out.grad_fn = self
        if _Mode.anomaly:
            _check_finite(y, f"{self.name} returned non-finite values in its forward output")
        if _Mode.recorders:
            for recorder in _Mode.recorders:
                recorder(self, inputs, out)
        return out

    @property
    def name(self):
        return type(self).__name__.lower()

    @property
    def output(self):
        return self._output()

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def release(self):
        """Drop what backward needed, so the graph's memory goes back now."""
        self.inputs = None
        self.released = True

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


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


def _store_leaf_grad(leaf, g, create_graph, stored):
    if create_graph:
        leaf.grad = _accumulate(leaf.grad, g)
    elif leaf.grad is not None:
        leaf.grad = _make(leaf.grad.data + g.data)
    else:
        # .grad must be writable, contiguous and its own: optimizers update it in place
        array = g.data
        owner = array if array.base is None else array.base
        flags = array.flags
        if id(owner) in stored or not flags.c_contiguous or not getattr(flags, "writeable", True):
            array = array.copy()
            owner = array
        stored.add(id(owner))
        leaf.grad = _make(array)


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

    def send(x, g):
        fn = x.grad_fn
        if fn is None:
            if captured is None:
                _store_leaf_grad(x, g, create_graph, stored)
            elif id(x) in captured:
                captured[id(x)] = _accumulate(captured[id(x)], g)
        elif fn in grads:
            grads[fn] = grads[fn] + g
        else:
            grads[fn] = g
            heapq.heappush(heap, (-fn.generation, id(fn), fn))

    for out, g in zip(outputs, grad_outputs):
        g = as_tensor(g, like=out)
        if g.shape != out.shape:
            raise RuntimeError(f"backward(): gradient has shape {g.shape}, but the output has shape {out.shape}")
        send(out, g)

    done = []
    previous, _Mode.grad_enabled = _Mode.grad_enabled, create_graph
    try:
        while heap:
            fn = heapq.heappop(heap)[2]
            gy = grads.pop(fn)
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
            if _Mode.anomaly:
                try:
                    grads_in = fn.backward(gy)
                except RuntimeError as e:
                    raise RuntimeError(f"{e}, while computing {fn.name} backward") from None
            else:
                grads_in = fn.backward(gy)
            if type(grads_in) is not tuple:
                grads_in = (grads_in,)
            for x, gx, need in zip(fn.inputs, grads_in, fn.needs_input_grad):
                if not need or gx is None:
                    continue
                x_data, g_data = x.data, gx.data
                if g_data.dtype != x_data.dtype:
                    gx = _ops.cast(gx, x_data.dtype)
                if g_data.shape != x_data.shape:
                    raise RuntimeError(f"{fn.name} backward returned shape {gx.shape} for an input of shape {x.shape}")
                if _Mode.anomaly:
                    _check_finite(g_data, f"{fn.name} backward returned non-finite values in its gradient")
                send(x, gx)
            done.append(fn)
    finally:
        _Mode.grad_enabled = previous
    if not retain_graph:
        for fn in done:
            fn.release()
    if captured is None:
        while _after_backward:
            _after_backward.pop(0)()
    return captured


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
            if out.data.size != 1:
                raise RuntimeError(f"grad(): grad_outputs is needed for the non-scalar output of shape {out.shape}")
            g = Tensor(get_array_module(out.data).ones_like(out.data))
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


from lamina import ops as _ops  # noqa: E402  (ops subclass Function, defined above)
