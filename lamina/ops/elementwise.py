"""Elementwise ops. Broadcasting gradients are reduced in one place: `sum_to`."""

import math

import numpy as np

from lamina import backend
from lamina.autograd import Function, Tensor, as_operand, record, recording, wrap
from lamina.backend import default_float, device_of, get_array_module, is_array
from lamina.ops.shape import broadcast_to, sum_to


def _pair(a, b):
    """Both operands as tensors; a Python number takes the other's dtype."""
    a, b = (a, as_operand(b, like=a)) if isinstance(a, Tensor) else (as_operand(a, like=b), b)
    a_float, b_float = a.array.dtype.kind == "f", b.array.dtype.kind == "f"
    if a_float != b_float:  # integer with float: the float's dtype wins (NumPy would widen to float64)
        if a_float:
            b = Cast(a.array.dtype)(b)  # an op, not a bare astype, so that a traced graph (ONNX) sees it
        else:
            a = Cast(b.array.dtype)(a)
    return a, b


def _floating(x):
    """Integer input to a float-valued op becomes float32, as in PyTorch, never float64."""
    x = as_operand(x)
    return x if x.array.dtype.kind in "fc" else Cast(default_float)(x)


class Add(Function):
    saved = ()

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a_shape, b_shape = self.input_shapes
        return sum_to(gy, a_shape), sum_to(gy, b_shape)


def add(a, b):
    """a + b, broadcasting as NumPy does; a Python number takes the tensor's dtype.

    >>> lamina.add(lamina.tensor([1.0, 2.0]), 1)
    tensor([2., 3.])
    """
    return Add()(*_pair(a, b))


class Sub(Function):
    saved = ()

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a_shape, b_shape = self.input_shapes
        return sum_to(gy, a_shape), sum_to(-gy, b_shape) if self.needs_input_grad[1] else None


def sub(a, b):
    return Sub()(*_pair(a, b))


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy * b, a.shape) if need_a else None,
                sum_to(gy * a, b.shape) if need_b else None)


def mul(a, b):
    """a * b, elementwise with broadcasting.

    >>> (lamina.tensor([[1.0], [2.0]]) * lamina.tensor([3.0, 4.0])).tolist()
    [[3.0, 4.0], [6.0, 8.0]]
    """
    return Mul()(*_pair(a, b))


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(gy / b, a.shape) if need_a else None,
                sum_to(-gy * a / (b * b), b.shape) if need_b else None)


def div(a, b):
    """a / b; two integer tensors divide into float32, as in PyTorch.

    >>> lamina.div(lamina.tensor([1, 2]), 2)
    tensor([0.5000, 1.0000])
    """
    a, b = _pair(a, b)
    if a.array.dtype.kind not in "fc" and b.array.dtype.kind not in "fc":
        a, b = _floating(a), _floating(b)  # true division of integers gives float32
    return Div()(a, b)


class Neg(Function):
    saved = ()

    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


def neg(a):
    return Neg()(a)


class PowConstant(Function):
    """a ** c for a Python number c."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        return a**self.exponent

    def backward(self, gy):
        (a,) = self.inputs
        c = self.exponent
        return gy * c * a ** (c - 1) if c != 2 else gy * 2 * a


class Pow(Function):
    """a ** b for two tensors."""

    saved = ("inputs", "output")

    def forward(self, a, b):
        return a**b

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        # d/db a**b = a**b * log(a): only asked for when b needs it, since log(a) is NaN for a < 0
        return (sum_to(gy * b * a ** (b - 1), a.shape) if need_a else None,
                sum_to(gy * self.output * log(a), b.shape) if need_b else None)


def pow(a, b):
    """a ** b, for a tensor and a number or two tensors.

    >>> lamina.pow(lamina.tensor([2.0, 3.0]), 2).tolist()
    [4.0, 9.0]
    """
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if isinstance(b, float) and a.array.dtype.kind not in "fc":
            a = _floating(a)
        return PowConstant(b)(a)
    return Pow()(*_pair(a, b))


class Exp(Function):
    saved = ("output",)

    def forward(self, a):
        return np.exp(a)

    def backward(self, gy):
        return gy * self.output


def exp(a):
    """e ** a, elementwise; integers become float32.

    >>> lamina.exp(lamina.tensor([0.0])).item()
    1.0
    """
    return Exp()(_floating(a))


class Log(Function):
    def forward(self, a):
        return np.log(a)

    def backward(self, gy):
        return gy / self.inputs[0]


def log(a):
    """Natural logarithm, elementwise.

    >>> round(lamina.log(lamina.tensor(np.e)).item(), 4)
    1.0
    """
    return Log()(_floating(a))


class Log1p(Function):
    def forward(self, a):
        return np.log1p(a)

    def backward(self, gy):
        return gy / (1 + self.inputs[0])


def log1p(a):
    """log(1 + a), exact for tiny a where log(1 + a) would round to 0.

    >>> lamina.log1p(lamina.tensor([1e-10])).item() > 0
    True
    """
    return Log1p()(_floating(a))


def log10(a):
    return log(a) * (1 / math.log(10))


class Expm1(Function):
    saved = ("output",)

    def forward(self, a):
        return np.expm1(a)

    def backward(self, gy):
        return gy * (self.output + 1)


def expm1(a):
    """exp(a) - 1, exact for tiny a."""
    return Expm1()(_floating(a))


class Sqrt(Function):
    saved = ("output",)

    def forward(self, a):
        return np.sqrt(a)

    def backward(self, gy):
        return gy / (2 * self.output)


def sqrt(a):
    return Sqrt()(_floating(a))


class Abs(Function):
    def forward(self, a):
        return np.abs(a)

    def backward(self, gy):
        return gy * wrap(np.sign(self.inputs[0].array))


def abs(a):
    return Abs()(as_operand(a))


class Sin(Function):
    def forward(self, a):
        return np.sin(a)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


def sin(a):
    return Sin()(_floating(a))


class Cos(Function):
    def forward(self, a):
        return np.cos(a)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])


def cos(a):
    return Cos()(_floating(a))


class Tanh(Function):
    saved = ("output",)

    def forward(self, a):
        return np.tanh(a)

    def backward(self, gy):
        return TanhGrad()(self.output, gy)


def tanh(a):
    """Hyperbolic tangent: squashes to (-1, 1).

    >>> lamina.tanh(lamina.tensor([0.0, 100.0])).tolist()
    [0.0, 1.0]
    """
    return Tanh()(_floating(a))


class TanhGrad(Function):
    """gy * (1 - y**2) in one pass over memory; differentiable itself, for second derivatives."""

    def forward(self, y, gy):
        out = np.multiply(y, y, out=get_array_module(y).empty_like(y))  # an array even when 0-d
        np.subtract(1, out, out=out)
        out *= gy
        return out

    def backward(self, g):
        y, gy = self.inputs
        return -2 * g * gy * y, g * (1 - y * y)


class Sigmoid(Function):
    saved = ("output",)

    def forward(self, a):
        z = np.exp(-np.abs(a))  # never exp of a large positive number
        return np.where(a >= 0, 1, z) / (1 + z)

    def backward(self, gy):
        y = self.output
        return gy * y * (1 - y)


def sigmoid(a):
    """1 / (1 + e ** -a), computed without overflow for any a.

    >>> lamina.sigmoid(lamina.tensor([0.0, -1000.0])).tolist()
    [0.5, 0.0]
    """
    return Sigmoid()(_floating(a))


def _erf(a):
    if a.dtype == np.float64:  # exact, for float64 checks; slower, off the float32 hot path
        return np.vectorize(math.erf, otypes=[a.dtype])(a)
    # Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, float32's own precision
    t = 1 / (1 + 0.3275911 * np.abs(a))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(a) * (1 - poly * np.exp(-a * a))


class Erf(Function):
    def forward(self, a):
        return _erf(a)

    def backward(self, gy):
        a = self.inputs[0]
        return gy * (2 / math.sqrt(math.pi)) * exp(-a * a)


def erf(a):
    return Erf()(_floating(a))


class ReLU(Function):
    def forward(self, a):
        return np.maximum(a, 0)

    def backward(self, gy):
        return gy * wrap(self.inputs[0].array > 0)


def relu(a):
    """max(a, 0): the activation most hidden layers use.

    >>> lamina.relu(lamina.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return ReLU()(as_operand(a))


class Clamp(Function):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, a):
        return np.clip(a, self.low, self.high)

    def backward(self, gy):
        a = self.inputs[0].array
        inside = True
        if self.low is not None:
            inside = inside & (a >= self.low)
        if self.high is not None:
            inside = inside & (a <= self.high)
        return gy * wrap(inside)


def clamp(a, min=None, max=None):
    """Limit values to [min, max]; either bound may be None.

    >>> lamina.clamp(lamina.tensor([-2.0, 0.5, 3.0]), min=0, max=1).tolist()
    [0.0, 0.5, 1.0]
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    min = min.item() if isinstance(min, Tensor) else min
    max = max.item() if isinstance(max, Tensor) else max
    return Clamp(min, max)(as_operand(a))


class Maximum(Function):
    """Elementwise max; where the two are equal each gets half the gradient, as in PyTorch."""

    pick, beats = np.maximum, np.greater  # ufuncs: Minimum swaps them

    def forward(self, a, b):
        return self.pick(a, b)

    def backward(self, gy):
        a, b = self.inputs
        share = self.beats(a.array, b.array).astype(gy.dtype)
        share += (a.array == b.array) * gy.dtype.type(0.5)  # in the gradient's dtype: no float64 temporary
        share = wrap(share)
        return sum_to(gy * share, a.shape), sum_to(gy * (1 - share), b.shape)


def maximum(a, b):
    return Maximum()(*_pair(a, b))


class Minimum(Maximum):
    pick, beats = np.minimum, np.less


def minimum(a, b):
    return Minimum()(*_pair(a, b))


class Where(Function):
    saved = ()

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        return get_array_module(a).where(self.condition, a, b)

    def backward(self, gy):
        a_shape, b_shape = self.input_shapes
        zero = wrap(get_array_module(gy.array).zeros((), dtype=gy.dtype))
        cond = self.condition
        need_a, need_b = self.needs_input_grad
        return (sum_to(where(cond, gy, zero), a_shape) if need_a else None,
                sum_to(where(cond, zero, gy), b_shape) if need_b else None)


def where(condition, input, other):
    """input where condition is true, else other; gradients flow to both.

    >>> x = lamina.tensor([-1.0, 2.0])
    >>> lamina.where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
    given_tensor = isinstance(condition, Tensor)
    condition = condition.array if given_tensor else condition
    if not is_array(condition):
        condition = np.asarray(condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, not {condition.dtype}")
    if isinstance(input, Tensor) or isinstance(other, Tensor):
        input, other = _pair(input, other)
    else:
        input, other = as_operand(input), as_operand(other)
    if type(condition) is not type(input.array) and device_of(condition) != device_of(input.array):
        if given_tensor or device_of(condition).type != "cpu":
            raise RuntimeError(f"where: expected all tensors to be on the same device, but found at least two "
                               f"devices, {device_of(condition)} and {device_of(input.array)}")
        condition = get_array_module(input.array).asarray(condition)  # a constant condition joins the tensors
    return Where(condition)(input, other)


class Cast(Function):
    saved = ()

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, a):
        self.input_dtype = a.dtype
        return a.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.input_dtype)


class ToDevice(Function):
    """The move of a tensor to another device; its gradient moves back."""

    saved = ()

    def __init__(self, where):
        self.where = where

    def forward(self, a):
        self.source = device_of(a)
        return backend.to_device(a, self.where)

    def backward(self, gy):
        return ToDevice(self.source)(gy)


def to_device(a, where):
    """`a` on device `where` (a checked lamina.device), recorded so that its gradient flows back."""
    return ToDevice(where)(a)


def masked_fill(x, mask, value):
    """x with `value` wherever the bool `mask` (broadcast to x) is true; no gradient flows there.

    >>> lamina.masked_fill(lamina.ones(3), lamina.tensor([True, False, True]), 0.0).tolist()
    [0.0, 1.0, 0.0]
    """
    mask = mask.array if isinstance(mask, Tensor) else get_array_module(x.array).asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, not {mask.dtype}")
    value = value.item() if isinstance(value, Tensor) else value
    filled = where(mask, as_operand(value, like=x), x)
    return filled if filled.shape == x.shape else broadcast_to(filled, x.shape)


def cast(a, dtype):
    a = as_operand(a)
    dtype = np.dtype(dtype)
    return a if a.array.dtype == dtype else Cast(dtype)(a)


clip = clamp


# --- comparisons: results are bool tensors outside the graph ---------------------------------------
class Compare(Function):
    """a < b and the like. Never called: comparisons stay outside the graph; this only names them to
    `record_ops` (ONNX export), with the NumPy ufunc that computed them."""

    def __init__(self, ufunc):
        self.ufunc = ufunc

    def forward(self, a, b):
        return self.ufunc(a, b)


def _compare(ufunc):
    def compare(a, b):
        a, b = _pair(a, b)
        try:
            out = wrap(ufunc(a.array, b.array))
        except ValueError:
            raise ValueError(f"{ufunc.__name__}: shapes {a.shape} and {b.shape} do not broadcast") from None
        if recording():
            record(Compare(ufunc), (a, b), out)
        return out

    compare.__name__ = ufunc.__name__
    return compare


lt = _compare(np.less)
le = _compare(np.less_equal)
gt = _compare(np.greater)
ge = _compare(np.greater_equal)
eq = _compare(np.equal)
ne = _compare(np.not_equal)
