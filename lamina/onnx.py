"""Export a lamina model to ONNX, for ONNX Runtime and every other ONNX consumer.

`export` runs the model once on an example input, in eval mode and without
gradients, with `lamina.autograd.record_ops` watching: every op that runs (a
`Function` with its input and output tensors) becomes one or a few ONNX nodes,
the model's parameters and buffers become initializers under their state-dict
names, and any other tensor the ops read is a constant. The graph is what ran,
not a re-implementation of each layer, so a user's own module exports as long
as it is built from lamina's ops.

The model is traced a second time on a changed input (values reordered, and
each dynamic axis one longer): if anything in the graph differs, part of the
forward pass depends on the input outside lamina's ops (a value read with
`.numpy()`, a shape used as a number) and `export` refuses, rather than write a
graph that is right only for the example.

Needs the `onnx` package (`pip install "lamina[onnx]"`); lamina imports it only
when exporting.
"""

import contextlib
import math
import numbers
import os

import numpy as np

from lamina import autograd, backend
from lamina.autograd import Tensor, no_grad, wrap
from lamina.errors import LaminaError
from lamina.files import write_atomically
from lamina.io import ModelFileError
from lamina.ops import attention as attention_ops
from lamina.ops import conv as conv_ops
from lamina.ops import elementwise as ew
from lamina.ops import linalg, reductions, shape
from lamina.ops import nn as nn_ops

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over one axis and ReduceSum's axes as an input start here
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


class ExportError(LaminaError, ValueError):
    """The model cannot be written as an ONNX graph (an op with no ONNX mapping, a value-dependent graph)."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the onnx package: pip install "lamina[onnx]"') from None
    return onnx


# --- tracing -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _layer_stack(model):
    """Keep a stack of the dotted names of the modules whose forward is running (for node names and errors)."""
    stack, patched = [], []
    for name, module in model.named_modules():
        original = module.forward
        previous = module.__dict__.get("forward")

        def forward(*args, _original=original, _name=name, **kwargs):
            stack.append(_name)
            try:
                return _original(*args, **kwargs)
            finally:
                stack.pop()

        module.__dict__["forward"] = forward
        patched.append((module, previous))
    try:
        yield stack
    finally:
        for module, previous in patched:
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = previous


def _trace(model, inputs):
    """Run model(*inputs) in eval mode without gradients; return (outputs, [(fn, inputs, output, layer)])."""
    records = []
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with _layer_stack(model) as stack, no_grad():
            recorder = autograd.record_ops(lambda fn, xs, out: records.append((fn, tuple(xs), out,
                                                                                stack[-1] if stack else "")))
            with recorder:
                outputs = model(*inputs)
    finally:
        for module, training in modes:
            module.__dict__["training"] = training
    return outputs, records


def _as_outputs(outputs):
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, (tuple, list)) and outputs and all(isinstance(o, Tensor) for o in outputs):
        return list(outputs)
    raise ExportError(f"export: the model must return a tensor or a tuple of tensors, not {type(outputs).__name__}")


# --- the graph, as plain data until the end --------------------------------------------------------------
class _Graph:
    """Nodes and initializers built from one trace; compared across traces, then turned into ONNX protos."""

    def __init__(self, model, inputs, input_names, output_names, opset, fold):
        self.opset, self.fold = opset, fold
        self.nodes = []  # (op_type, inputs, outputs, attributes, node name)
        self.initializers = {}  # name -> array
        self.names = {}  # id(tensor) -> value name
        self.array_names = {}  # id(array) -> value name (a tensor's data, reached through detach or an index)
        self.constant_names = {}  # id(array) -> initializer name
        self.param_names = {}  # id(array) -> state-dict name, for the initializers of weights and buffers
        self.keep = []  # everything whose id is a key above stays alive, so that no id is reused
        self.counts = {}
        self.layer = ""
        self.taken = set(input_names) | set(output_names)  # names that no node output or constant may reuse
        for t, name in zip(inputs, input_names):
            self._bind(t, name)
        for table in (model.named_parameters(), model.named_buffers()):
            for name, t in table:
                if t is not None:
                    self.param_names.setdefault(id(t.array), name)
                    self.taken.add(name)
                    self.keep.append(t.array)

    def _bind(self, tensor, name):
        self.names[id(tensor)] = name
        self.array_names[id(tensor.array)] = name
        self.keep.append(tensor)

    # values
    def is_constant(self, t):
        """A tensor that no traced op made and whose array is no graph value: a weight or a constant."""
        return id(t) not in self.names and id(t.array) not in self.array_names

    def value(self, t):
        """The name of tensor t in the graph: an input, an op's output, a parameter or a constant."""
        if id(t) in self.names:
            return self.names[id(t)]
        return self.array(t.array)  # t = value.detach() shares the value's array; else t is a constant

    def array(self, array):
        """The name of an array: a value's if one has it, else a constant's (a weight under its own name)."""
        if id(array) in self.array_names:
            return self.array_names[id(array)]
        name = self.constant_names.get(id(array))
        if name is None:
            name = self.param_names.get(id(array)) or self._fresh("const")
            self.constant_names[id(array)] = name
            self.initializers[name] = np.asarray(array.get() if hasattr(array, "get") else array)
            self.keep.append(array)
        return name

    def const(self, value, dtype):
        """A new constant initializer holding `value` as `dtype`."""
        name = self._fresh("const")
        self.initializers[name] = np.asarray(value, dtype=dtype)
        return name

    def ints(self, values):
        return self.const(list(values), np.int64)

    def _fresh(self, prefix):
        while True:
            n = self.counts.get(prefix, 0)
            self.counts[prefix] = n + 1
            name = f"{prefix}_{n}" if n else prefix
            if name not in self.taken:
                self.taken.add(name)
                return name

    # nodes
    def node(self, op_type, inputs, n_outputs=1, **attributes):
        base = f"/{self.layer.replace('.', '/')}/{op_type}" if self.layer else f"/{op_type}"
        name = self._fresh(base)
        outputs = [f"{name}_output_{i}" for i in range(n_outputs)]
        self.nodes.append((op_type, list(inputs), outputs, attributes, name))
        return outputs[0] if n_outputs == 1 else outputs

    def reduce(self, op_type, x, axes, keepdims):
        """A Reduce* node; its axes are an attribute before opset 18 (ReduceSum: 13) and an input after."""
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.node(op_type, [x], axes=axes, keepdims=int(keepdims))

    def add_op(self, fn, inputs, output, layer):
        self.layer = layer
        if self.fold and all(self.is_constant(x) for x in inputs) and not _holds_values(fn, self):
            self.keep.append(output)  # everything it reads is known now: its output is a constant, computed
            return
        convert = CONVERTERS.get(type(fn))
        if convert is None:
            where = f" in layer '{layer}'" if layer else ""
            raise ExportError(f"export: lamina op '{fn.name}' ({type(fn).__module__}.{type(fn).__qualname__}){where} "
                              "has no ONNX mapping")
        name = convert(self, fn, inputs, [self.value(x) for x in inputs], output)
        self._bind(output, name)

    def finish(self, outputs, output_names):
        """Give the model's outputs their names."""
        final = {}
        produced = {out for node in self.nodes for out in node[2]}
        for t, name in zip(outputs, output_names):
            value = self.value(t)
            if value in produced and value not in final:
                final[value] = name
            else:  # an input, a constant, or an output already named: copy it under the new name
                self.nodes.append(("Identity", [value], [name], {}, self._fresh(f"/{name}/Identity")))
        if final:
            self.nodes = [(op, [final.get(i, i) for i in ins], [final.get(o, o) for o in outs], attrs, name)
                          for op, ins, outs, attrs, name in self.nodes]


def _holds_values(fn, graph):
    """True when fn reads a graph value through an array it holds (Where's condition, an index array)."""
    for array in _held_arrays(fn):
        if id(array) in graph.array_names:
            return True
    return False


def _held_arrays(fn):
    if isinstance(fn, ew.Where):
        return [fn.condition]
    if isinstance(fn, shape.GetItem):
        items = fn.index if isinstance(fn.index, tuple) else (fn.index,)
        return [i for i in items if hasattr(i, "dtype") and hasattr(i, "shape")]
    if isinstance(fn, shape.Gather):
        return [fn.index]
    if isinstance(fn, nn_ops.Embedding):
        return [fn.indices]
    return []


# --- converters: one lamina Function -> ONNX nodes ------------------------------------------------------------
def _simple(op_type):
    def convert(g, fn, xs, names, out):
        return g.node(op_type, names)

    return convert


def _pow_constant(g, fn, xs, names, out):
    c = fn.exponent
    if c == 1:
        return g.node("Identity", names)
    if c == 2:
        return g.node("Mul", [names[0], names[0]])
    if c == 0.5:
        return g.node("Sqrt", names)
    return g.node("Pow", [names[0], g.const(c, xs[0].dtype)])


def _clamp(g, fn, xs, names, out):
    low = "" if fn.low is None else g.const(fn.low, xs[0].dtype)
    high = "" if fn.high is None else g.const(fn.high, xs[0].dtype)
    return g.node("Clip", [names[0], low, high])


def _where(g, fn, xs, names, out):
    if names[0] == names[1]:  # where(c, v.detach(), v) (Embedding's padding row): v, whatever c holds
        return g.node("Identity", [names[0]])
    return g.node("Where", [g.array(fn.condition), *names])


def _cast(g, fn, xs, names, out):
    return g.node("Cast", names, to=_onnx().helper.np_dtype_to_tensor_dtype(np.dtype(fn.dtype)))


_COMPARISONS = {"less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
                "greater_equal": "GreaterOrEqual", "equal": "Equal"}


def _compare(g, fn, xs, names, out):
    if fn.ufunc.__name__ == "not_equal":
        return g.node("Not", [g.node("Equal", names)])
    return g.node(_COMPARISONS[fn.ufunc.__name__], names)


def _argmax(g, fn, xs, names, out):
    op = "ArgMin" if fn.take_min else "ArgMax"
    if fn.axis is None:
        flat = g.node("Reshape", [names[0], g.ints([-1])])
        return g.node("Reshape", [g.node(op, [flat], axis=0, keepdims=1), g.ints([])])
    return g.node(op, names, axis=fn.axis, keepdims=int(fn.keepdim))


def _swap_last(g, name, ndim):
    perm = list(range(ndim))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return g.node("Transpose", [name], perm=perm)


def _matmul(g, fn, xs, names, out):
    a = _swap_last(g, names[0], xs[0].ndim) if fn.ta else names[0]
    b = _swap_last(g, names[1], xs[1].ndim) if fn.tb else names[1]
    return g.node("MatMul", [a, b])


def _linear(g, fn, xs, names, out):
    if xs[0].ndim == 2:
        return g.node("Gemm", names, transB=1)
    y = g.node("MatMul", [names[0], g.node("Transpose", [names[1]], perm=[1, 0])])
    return g.node("Add", [y, names[2]]) if len(names) == 3 else y


def _window(geometry):
    (pt, pb), (pl, pr) = geometry.pads
    extra_h, extra_w = (w - p for w, p in zip(geometry.work_hw, geometry.padded_hw))  # ceil_mode overhang
    return dict(kernel_shape=list(geometry.kernel), strides=list(geometry.stride),
                pads=[pt, pl, pb + extra_h, pr + extra_w])


def _conv(g, fn, xs, names, out):
    return g.node("Conv", names, group=fn.groups, dilations=list(fn.g.dilation), **_window(fn.g))


def _conv_transpose(g, fn, xs, names, out):
    geometry = fn.g
    (pt, pb), (pl, pr) = geometry.pads
    natural = [s * (n - 1) + d * (k - 1) + 1 - a - b
               for s, n, d, k, (a, b) in zip(geometry.stride, xs[0].shape[2:], geometry.dilation, geometry.kernel,
                                             geometry.pads)]
    output_padding = [o - n for o, n in zip(out.shape[2:], natural)]
    return g.node("ConvTranspose", names, group=fn.groups, dilations=list(geometry.dilation),
                  kernel_shape=list(geometry.kernel), strides=list(geometry.stride), pads=[pt, pl, pb, pr],
                  output_padding=output_padding)


def _padded_for_pool(g, name, window, fill, dtype):
    """Pads that ONNX pooling would refuse (not smaller than the kernel) become a Pad node in front."""
    pads, kernel = window["pads"], window["kernel_shape"]
    if all(p < k for p, k in zip(pads, kernel + kernel)):
        return name, window
    widths = [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]
    padded = g.node("Pad", [name, g.ints(widths), g.const(fill, dtype)], mode="constant")
    return padded, {**window, "pads": [0, 0, 0, 0]}


def _max_pool(g, fn, xs, names, out):
    source = g.node("Relu", names) if fn.relu else names[0]  # relu_max_pool2d: the ReLU it fused
    x, window = _padded_for_pool(g, source, _window(fn.g), -np.inf, xs[0].dtype)
    return g.node("MaxPool", [x], dilations=list(fn.g.dilation), **window)


def _window_mean(g, fn, xs, names, out):
    x, window = _padded_for_pool(g, names[0], _window(fn.g), 0, xs[0].dtype)
    pooled = g.node("AveragePool", [x], count_include_pad=1, **window)  # every window's sum / kernel size
    size = math.prod(fn.g.kernel)
    if isinstance(fn.divisor, (int, float)):
        return pooled if fn.divisor == size else g.node("Mul", [pooled, g.const(size / fn.divisor, xs[0].dtype)])
    return g.node("Mul", [pooled, g.const(size / np.asarray(fn.divisor, np.float64), xs[0].dtype)])


def _pad(g, fn, xs, names, out):
    widths = [a for a, _ in fn.widths] + [b for _, b in fn.widths]
    return g.node("Pad", [names[0], g.ints(widths), g.const(fn.value, xs[0].dtype)], mode="constant")


def _reshape(g, fn, xs, names, out):
    """Reshape to the traced shape, written so that it holds for any size of a dynamic axis: a dim kept
    from the input (same size, same elements before it) is 0, "copy the input's", and the first other
    dim is -1, "whatever is left"."""
    source, target = xs[0].shape, out.shape
    spec = []
    for i, n in enumerate(target):
        kept = i < len(source) and source[i] == n and math.prod(source[:i]) == math.prod(target[:i])
        spec.append(0 if kept else n)
    for i, n in enumerate(spec):
        if n != 0:
            spec[i] = -1
            break
    return g.node("Reshape", [names[0], g.ints(spec)])


def _permute(g, fn, xs, names, out):
    return g.node("Transpose", names, perm=list(fn.dims))


def _broadcast_to(g, fn, xs, names, out):
    source = (1,) * (len(fn.shape) - xs[0].ndim) + tuple(xs[0].shape)
    lead = len(fn.shape) - xs[0].ndim
    # 1 where the input already has the size (Expand keeps the input's dim), so a dynamic axis stays dynamic
    spec = [1 if i >= lead and s == n else n for i, (s, n) in enumerate(zip(source, fn.shape))]
    return g.node("Expand", [names[0], g.ints(spec)])


def _cat(g, fn, xs, names, out):
    return g.node("Concat", names, axis=fn.dim)


def _gather(g, fn, xs, names, out):
    return g.node("GatherElements", [names[0], g.array(fn.index)], axis=fn.dim)


def _is_index_array(item):
    return hasattr(item, "dtype") and hasattr(item, "shape")


def _getitem(g, fn, xs, names, out):
    items = list(fn.index) if isinstance(fn.index, tuple) else [fn.index]
    arrays = [i for i, item in enumerate(items) if _is_index_array(item)]
    if any(items[i].dtype.kind == "b" for i in arrays):
        raise ExportError(f"export: indexing with a boolean mask (layer '{g.layer}') has no fixed-shape ONNX form")
    ndim = xs[0].ndim
    if Ellipsis in [i for i in items if not _is_index_array(i)]:
        at = next(k for k, i in enumerate(items) if not _is_index_array(i) and i is Ellipsis)
        used = sum(1 for i in items if i is not None and not (not _is_index_array(i) and i is Ellipsis))
        items[at:at + 1] = [slice(None)] * (ndim - used)
    if arrays:
        basic_others = all(isinstance(i, slice) and i == slice(None) for k, i in enumerate(items) if k not in arrays)
        if len(arrays) > 1 or not basic_others:
            raise ExportError(f"export: indexing with {len(arrays)} index arrays mixed with other indices "
                              f"(layer '{g.layer}') has no ONNX mapping; index one dim at a time")
        return g.node("Gather", [names[0], g.array(items[arrays[0]])], axis=arrays[0])
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = position = 0
    for item in items:
        if item is None:
            unsqueeze.append(position)
            position += 1
            continue
        if isinstance(item, numbers.Integral):
            start = int(item)
            starts.append(start)
            ends.append(start + 1 if start != -1 else _INT64_MAX)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        elif isinstance(item, slice):
            if item != slice(None):
                step = 1 if item.step is None else int(item.step)
                starts.append(int(item.start) if item.start is not None else (0 if step > 0 else _INT64_MAX))
                ends.append(int(item.stop) if item.stop is not None else (_INT64_MAX if step > 0 else _INT64_MIN))
                axes.append(axis)
                steps.append(step)
            position += 1
        else:
            raise ExportError(f"export: index {item!r} (layer '{g.layer}') has no ONNX mapping")
        axis += 1
    name = names[0]
    if axes:
        name = g.node("Slice", [name, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if squeeze:
        name = g.node("Squeeze", [name, g.ints(squeeze)])
    if unsqueeze:
        name = g.node("Unsqueeze", [name, g.ints(unsqueeze)])
    return name if name != names[0] else g.node("Identity", [name])


def _sum(g, fn, xs, names, out):
    return g.reduce("ReduceSum", names[0], fn.axes, fn.keepdim)


def _mean(g, fn, xs, names, out):
    return g.reduce("ReduceMean", names[0], fn.axes, fn.keepdim)


def _amax(g, fn, xs, names, out):
    return g.reduce("ReduceMin" if fn.take_min else "ReduceMax", names[0], fn.axes, fn.keepdim)


def _logsumexp(g, fn, xs, names, out):
    return g.reduce("ReduceLogSumExp", names[0], fn.axes, fn.keepdim)


def _layer_norm(g, fn, xs, names, out):
    """Written out in ops every opset has (LayerNormalization needs opset 17)."""
    axes = tuple(range(xs[0].ndim - fn.dims, xs[0].ndim))
    centered = g.node("Sub", [names[0], g.reduce("ReduceMean", names[0], axes, True)])
    var = g.reduce("ReduceMean", g.node("Mul", [centered, centered]), axes, True)
    y = g.node("Div", [centered, g.node("Sqrt", [g.node("Add", [var, g.const(fn.eps, xs[0].dtype)])])])
    return y if len(names) == 1 else g.node("Add", [g.node("Mul", [y, names[1]]), names[2]])


def _linear_relu(g, fn, xs, names, out):
    return g.node("Relu", [_linear(g, fn, xs, names, out)])


def _embedding(g, fn, xs, names, out):
    return g.node("Gather", [names[0], g.array(fn.indices)], axis=0)


def _attention(g, fn, xs, names, out):
    """ops.attention.Attention written out: heads split from (B, L, H E), softmax(q k^T * scale + bias) v,
    heads merged back (0 in a Reshape copies the input's dim, so batch and length may be dynamic)."""
    heads, width = fn.heads, xs[0].shape[-1] // (3 if fn.packed else 1)
    if fn.packed:  # (B, L, 3 H E) -> (3, B, H, L, E), then q, k, v by index
        split = g.node("Transpose", [g.node("Reshape", [names[0], g.ints([0, 0, 3, heads, width // heads])])],
                       perm=[2, 0, 3, 1, 4])
        q, k, v = (g.node("Squeeze", [g.node("Gather", [split, g.ints([i])], axis=0), g.ints([0])]) for i in range(3))
    else:
        q, k, v = (g.node("Transpose", [g.node("Reshape", [name, g.ints([0, 0, heads, -1])])], perm=[0, 2, 1, 3])
                   for name in names)
    scores = g.node("Mul", [g.node("MatMul", [q, g.node("Transpose", [k], perm=[0, 1, 3, 2])]),
                            g.const(fn.scale, xs[0].dtype)])
    if fn.bias is not None:
        scores = g.node("Add", [scores, g.array(fn.bias.astype(xs[0].dtype, copy=False))])
    merged = g.node("Transpose", [g.node("MatMul", [g.node("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3])
    return g.node("Reshape", [merged, g.ints([0, 0, -1])])


def _softmax(op_type):
    def convert(g, fn, xs, names, out):
        return g.node(op_type, names, axis=fn.axis)

    return convert


CONVERTERS = {
    ew.Add: _simple("Add"), ew.Sub: _simple("Sub"), ew.Mul: _simple("Mul"), ew.Div: _simple("Div"),
    ew.Neg: _simple("Neg"), ew.Pow: _simple("Pow"), ew.PowConstant: _pow_constant, ew.Exp: _simple("Exp"),
    ew.Log: _simple("Log"), ew.Sqrt: _simple("Sqrt"), ew.Abs: _simple("Abs"), ew.Sin: _simple("Sin"),
    ew.Cos: _simple("Cos"), ew.Tanh: _simple("Tanh"), ew.Sigmoid: _simple("Sigmoid"), ew.Erf: _simple("Erf"),
    ew.ReLU: _simple("Relu"), ew.Clamp: _clamp, ew.Maximum: _simple("Max"), ew.Minimum: _simple("Min"),
    ew.Where: _where, ew.Cast: _cast, ew.Compare: _compare,
    linalg.MatMul: _matmul, nn_ops.Linear: _linear, nn_ops.LayerNorm: _layer_norm,
    nn_ops.LinearReLU: _linear_relu, nn_ops.Embedding: _embedding, attention_ops.Attention: _attention,
    conv_ops.Conv2d: _conv, conv_ops.Conv2dInputGrad: _conv_transpose, conv_ops.MaxPool: _max_pool,
    conv_ops.WindowMean: _window_mean,
    shape.Reshape: _reshape, shape.Permute: _permute, shape.BroadcastTo: _broadcast_to, shape.Cat: _cat,
    shape.Pad: _pad, shape.GetItem: _getitem, shape.Gather: _gather,
    reductions.Sum: _sum, reductions.Mean: _mean, reductions.Amax: _amax, reductions.LogSumExp: _logsumexp,
    reductions.Softmax: _softmax("Softmax"), reductions.LogSoftmax: _softmax("LogSoftmax"),
    reductions.ArgMax: _argmax,
}


# --- export ---------------------------------------------------------------------------------------------
def _as_inputs(args):
    if isinstance(args, (tuple, list)):
        items = list(args)
    else:
        items = [args]
    tensors = []
    for a in items:
        if isinstance(a, Tensor):
            tensors.append(wrap(a._host_array()))
        else:
            array = np.asarray(a)
            if array.dtype == np.float64 and not isinstance(a, np.ndarray):
                array = array.astype(np.float32)  # a Python float is lamina's default float
            tensors.append(wrap(array))
    if not tensors:
        raise ExportError("export: give the model's example input (a tensor, an array, or a tuple of them)")
    return tensors


def _dynamic(dynamic_axes, names):
    """{name: {axis: dim name}} from PyTorch's forms ({name: {axis: label}} or {name: [axes]})."""
    result = {}
    for name, axes in (dynamic_axes or {}).items():
        if name not in names:
            raise ExportError(f"export: dynamic_axes names {name!r}, which is not one of the input or output names "
                              f"{names}")
        if isinstance(axes, dict):
            result[name] = {int(a): str(label) for a, label in axes.items()}
        else:
            result[name] = {int(a): f"{name}_dynamic_axes_{k + 1}" for k, a in enumerate(axes)}
    return result


def _second_input(t, axes):
    """The example changed, within its range, and one longer on each dynamic axis.

    Floats move a tenth of the way towards their minimum (their maximum, sum and mean all change) and
    every array is reversed along every dim; integers (indices, say) are only reversed, so they stay valid.
    """
    array = np.asarray(t.array)
    if array.dtype.kind == "f" and array.size:
        array = (array * array.dtype.type(0.9) + array.min() * array.dtype.type(0.1)).astype(array.dtype)
    array = np.flip(array, tuple(range(array.ndim))) if array.ndim else array
    for axis in sorted(axes):
        array = np.concatenate([array, np.take(array, [0], axis=axis)], axis=axis)
    return wrap(np.ascontiguousarray(array))


def _build(model, inputs, input_names, output_names, opset, fold):
    outputs, records = _trace(model, inputs)
    outputs = _as_outputs(outputs)
    if output_names is None:
        output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    if len(outputs) != len(output_names):
        raise ExportError(f"export: the model returns {len(outputs)} outputs but output_names has "
                          f"{len(output_names)}")
    graph = _Graph(model, inputs, input_names, output_names, opset, fold)
    for fn, xs, out, layer in records:
        graph.add_op(fn, xs, out, layer)
    graph.finish(outputs, output_names)
    return graph, outputs, list(output_names)


def _first_difference(a, b):
    for x, y in zip(a.nodes, b.nodes):
        if x != y:
            return f"node {x[4]} ({x[0]}) has {x[1:4]} once and {y[1:4]} the other time"
    if len(a.nodes) != len(b.nodes):
        return f"one trace ran {len(a.nodes)} ONNX nodes, the other {len(b.nodes)}"
    for name in sorted(set(a.initializers) | set(b.initializers)):
        x, y = a.initializers.get(name), b.initializers.get(name)
        if x is None or y is None or x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y,
                                                                                                     equal_nan=True):
            return f"the constant {name} differs ({'missing' if x is None or y is None else f'{x.shape} vs {y.shape}'})"
    return None


def _dim_names(first, second, names_given, input_dims):
    dims = []
    for axis, (n1, n2) in enumerate(zip(first, second)):
        if axis in names_given:
            dims.append(names_given[axis])
        elif n1 != n2:
            match = [label for sizes, label in input_dims if sizes == (n1, n2)]
            dims.append(match[0] if match else f"dim_{axis}")
        else:
            dims.append(int(n1))
    return dims


def export(model, args, f=None, input_names=None, output_names=None, dynamic_axes=None,
           opset_version=DEFAULT_OPSET, do_constant_folding=True, check=True):
    """Write `model` as an ONNX graph to `f` (a path or a binary file), as `torch.onnx.export` does.

    `args` is the example input: a tensor or array, or a tuple of them for a
    model with several inputs. `input_names` and `output_names` name the graph's
    inputs and outputs ("input", "output" by default, numbered when there are
    several). `dynamic_axes` marks axes whose size may change, in PyTorch's
    form: `{"input": {0: "batch"}, "output": {0: "batch"}}` (or `{"input": [0]}`);
    without it every shape is fixed to the example's. With `do_constant_folding`,
    ops that read only weights and constants (BatchNorm's scale, say) are
    computed once now. The model is checked with onnx's checker and returned as
    an `onnx.ModelProto`.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset_version <= latest:
        raise ExportError(f"export: opset_version must be between {MIN_OPSET} and {latest}, got {opset_version}")
    while getattr(model, "wraps_module", False):  # a data-parallel wrapper exports the model it wraps
        model = model.module
    first_param = next(model.parameters(), None)
    if first_param is not None and first_param.device != backend.CPU:  # traced on the host: ONNX holds host arrays
        where = first_param.device
        model.to(backend.CPU)
        try:
            return export(model, args, f, input_names, output_names, dynamic_axes, opset_version, do_constant_folding,
                          check)
        finally:
            model.to(where)
    inputs = _as_inputs(args)
    weights = {p.dtype for p in model.parameters() if p.dtype.kind == "f"}
    for i, t in enumerate(inputs):
        if t.dtype.kind == "f" and weights and t.dtype not in weights:
            raise ExportError(f"export: example input {i} is {t.dtype}, but the model's weights are "
                              f"{', '.join(sorted(str(w) for w in weights))}; give an input of the weights' dtype")
    input_names = list(input_names or (["input"] if len(inputs) == 1 else [f"input_{i}" for i in
                                                                           range(len(inputs))]))
    if len(input_names) != len(inputs):
        raise ExportError(f"export: {len(inputs)} example inputs but {len(input_names)} input_names")
    first, outputs, output_names = _build(model, inputs, input_names, output_names, opset_version,
                                          do_constant_folding)
    dynamic = _dynamic(dynamic_axes, input_names + output_names)
    for t, name in zip(inputs, input_names):
        for axis in dynamic.get(name, {}):
            if not -t.ndim <= axis < t.ndim:
                raise ExportError(f"export: dynamic axis {axis} of {name} is out of range for its shape {t.shape}")
        dynamic[name] = {a % t.ndim: label for a, label in dynamic.get(name, {}).items()}

    # the same graph must come out of a changed input, or the example's values or sizes are baked in
    changed = [_second_input(t, dynamic.get(name, {})) for t, name in zip(inputs, input_names)]
    try:
        second, outputs2, _ = _build(model, changed, input_names, output_names, opset_version, do_constant_folding)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"export: the model failed on an input with its dynamic axes one longer ({e}); "
                          "check dynamic_axes") from None
    difference = _first_difference(first, second)
    if difference is not None:
        raise ExportError(
            "export: the traced graph depends on the example input: " + difference + ". Part of the forward pass "
            "uses the input's values or sizes outside lamina's ops (.numpy(), .array, .item(), a shape used as a "
            "number, Python control flow on values), or an axis whose size is used that way is marked dynamic; "
            "such a graph would be right only for the example")

    def value_info(name, t, dims):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)

    graph_inputs, input_dims = [], []
    for t, t2, name in zip(inputs, changed, input_names):
        labels = dynamic.get(name, {})
        graph_inputs.append(value_info(name, t, [labels.get(a, int(n)) for a, n in enumerate(t.shape)]))
        input_dims += [((t.shape[a], t2.shape[a]), label) for a, label in labels.items()]
    graph_outputs = [value_info(name, out, _dim_names(out.shape, out2.shape, dynamic.get(name, {}), input_dims))
                     for out, out2, name in zip(outputs, outputs2, output_names)]
    nodes = [helper.make_node(op, ins, outs, name=name, **attrs) for op, ins, outs, attrs, name in first.nodes]
    used = {i for node in first.nodes for i in node[1]}
    initializers = [numpy_helper.from_array(np.ascontiguousarray(a), name) for name, a in first.initializers.items()
                    if name in used]
    graph = helper.make_graph(nodes, type(model).__name__, graph_inputs, graph_outputs, initializers)
    opsets = [helper.make_opsetid("", opset_version)]
    from lamina import __version__

    proto = helper.make_model(graph, opset_imports=opsets, producer_name="lamina", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if f is not None:
        data = proto.SerializeToString()
        if hasattr(f, "write"):
            f.write(data)
        else:
            write_atomically(f, lambda file: file.write(data))
    return proto


def load(path):
    """Read an ONNX file and check it; a truncated or corrupted file raises ModelFileError naming it."""
    onnx = _onnx()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such ONNX file: {path}")
    try:
        proto = onnx.load(path)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path}: not an ONNX model, or truncated or corrupted ({type(e).__name__}: "
                             f"{e})") from None
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: not a valid ONNX model, or truncated or corrupted ({first})") from None
    return proto


# --- the command line ---------------------------------------------------------------------------------------
def example_shape(model, document):
    """The shape of one sample the model takes (without the batch axis), from how it was trained or its first layer.

    Returns None when neither tells."""
    settings = (document or {}).get("metadata", {}).get("settings", {})
    dataset = settings.get("dataset")
    if dataset is not None:
        from lamina import datasets

        if dataset in datasets.IMAGE_SETS:
            return (1, 28, 28) if settings.get("model") == "cnn" else (28, 28)
        if dataset in datasets.TOY_SETS:
            return (2,)
    from lamina import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            return None
    return None


def export_file(model_path, onnx_path, input_shape=None, opset_version=DEFAULT_OPSET):
    """`lamina export`: a saved model (.npz or .safetensors with its architecture) to an ONNX file whose
    batch axis is dynamic. Returns (input shape with the batch, output shape with the batch)."""
    from lamina import io

    model = io.load(model_path)
    if isinstance(model, dict):
        raise ModelFileError(f"{model_path}: holds only weights (a state dict), no architecture to export")
    document = io.read_metadata(model_path)
    if input_shape is None:
        input_shape = example_shape(model, document)
        if input_shape is None:
            raise ExportError(f"{model_path}: cannot tell the shape of the model's input; pass --input-shape, "
                              "e.g. --input-shape 1,28,28 (one sample, without the batch axis)")
    example = np.random.default_rng(0).random((2, *input_shape), dtype=np.float32)
    try:
        with no_grad():
            out = _as_outputs(model.eval()(wrap(example)))
    except (ValueError, IndexError, TypeError) as e:
        raise ExportError(f"{model_path}: the model does not take inputs of shape {tuple(input_shape)} "
                          f"(one sample) ({e})") from None
    export(model, example, onnx_path, input_names=["input"], output_names=["output"],
           dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset_version)
    return ("batch", *input_shape), ("batch", *out[0].shape[1:])
