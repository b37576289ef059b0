"""More elementwise ops: rounding, trigonometry, division's relatives, tests of values, and PyTorch's aliases.

Where a composition of existing ops is exact and costs no more, the op is that composition (fewer backward rules
to get right); a `Function` of its own where NumPy has the function and the composition would lose precision.
"""

import math

import numpy as np

from lamina.autograd import Function, Tensor, as_operand, wrap
from lamina.backend import get_array_module
from lamina.ops.elementwise import _floating, _pair, abs, clamp, ge, gt, le, lt, mul, ne, neg, pow, sub, where
from lamina.ops.elementwise import div as _true_div
from lamina.ops.shape import sum_to


def _tensor(x, op, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a tensor, not {type(x).__name__}")
    return x


# --- rounding and sign: piecewise constant, so their gradient is zero (as in PyTorch) ---------------------
class Piecewise(Function):
    """A NumPy ufunc whose derivative is zero almost everywhere: floor, ceil, round, trunc, sign."""

    saved = ()

    def __init__(self, ufunc, decimals=0):
        self.ufunc, self.decimals = ufunc, decimals

    @property
    def name(self):
        return self.ufunc.__name__

    def forward(self, a):
        if self.decimals:
            return np.round(a, self.decimals)  # NumPy's round half to even, as PyTorch's
        return self.ufunc(a)

    def backward(self, gy):
        return gy * 0


def _piecewise(ufunc, x, op):
    x = as_operand(_tensor(x, op))
    if x.dtype.kind in "iub" and ufunc is not np.sign:
        return x  # an integer is already whole: PyTorch returns it unchanged
    return Piecewise(ufunc)(x)


def floor(input):
    """The largest whole number <= input; integers pass unchanged.

    >>> lamina.floor(lamina.tensor([-1.5, 1.5])).tolist()
    [-2.0, 1.0]
    """
    return _piecewise(np.floor, input, "floor")


def ceil(input):
    return _piecewise(np.ceil, input, "ceil")


def trunc(input):
    return _piecewise(np.trunc, input, "trunc")


def round(input, *, decimals=0):
    """Round half to even, as PyTorch (and NumPy) do; `decimals` digits after the point.

    >>> lamina.round(lamina.tensor([0.5, 1.5, 2.5])).tolist()
    [0.0, 2.0, 2.0]
    >>> lamina.round(lamina.tensor([1.2345], dtype=lamina.float64), decimals=2).item()
    1.23
    """
    if decimals == 0:
        return _piecewise(np.round, input, "round")
    return Piecewise(np.round, int(decimals))(_floating(_tensor(input, "round")))


def sign(input):
    """-1, 0 or 1 in the input's dtype (bool stays bool); zero gradient."""
    input = _tensor(input, "sign")
    return input if input.dtype == np.bool_ else Piecewise(np.sign)(input)


sgn = sign  # the same for real numbers


def frac(input):
    """input - trunc(input): the fractional part, with the sign of the input; gradient 1."""
    return input - trunc(input).detach()


# --- tests of values: bool results outside the graph ----------------------------------------------------------
def isnan(input):
    return wrap(get_array_module(_tensor(input, "isnan").array).isnan(input.array))


def isinf(input):
    return wrap(get_array_module(_tensor(input, "isinf").array).isinf(input.array))


def isfinite(input):
    """True where input is neither NaN nor infinite.

    >>> lamina.isfinite(lamina.tensor([1.0, float("nan"), float("inf")])).tolist()
    [True, False, False]
    """
    return wrap(get_array_module(_tensor(input, "isfinite").array).isfinite(input.array))


def _logical(ufunc, name):
    def logical(input, other):
        a, b = as_operand(_tensor(input, name)), as_operand(other)
        return wrap(ufunc(a.array != 0, b.array != 0))

    logical.__name__ = name
    logical.__doc__ = f"Elementwise {name.split('_')[1]} of the truth of input and other: a bool tensor."
    return logical


logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def logical_not(input):
    return wrap(_tensor(input, "logical_not").array == 0)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other|, elementwise, as a bool tensor."""
    a, b = _pair(_tensor(input, "isclose"), other)
    return wrap(get_array_module(a.array).isclose(a.array, b.array, rtol, atol, equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether isclose holds everywhere: a Python bool."""
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def equal(input, other):
    """True when both have the same shape and the same values (a Python bool)."""
    a, b = _tensor(input, "equal"), _tensor(other, "equal", "other")
    return a.shape == b.shape and bool((a.array == b.array).all())


# --- trigonometric and hyperbolic functions -------------------------------------------------------------
class Unary(Function):
    """A NumPy ufunc of one float input, with its derivative given as a function of (input, output) in lamina ops."""

    saved = ("inputs", "output")

    def __init__(self, ufunc, derivative):
        self.ufunc, self.derivative = ufunc, derivative

    @property
    def name(self):
        return self.ufunc.__name__

    def forward(self, a):
        return self.ufunc(a)

    def backward(self, gy):
        return gy * self.derivative(self.inputs[0], self.output)


def _unary(ufunc, derivative, name, doc=None):
    def op(input):
        return Unary(ufunc, derivative)(_floating(_tensor(input, name)))

    op.__name__, op.__doc__ = name, doc
    return op


sinh = _unary(np.sinh, lambda x, y: cosh(x), "sinh")
cosh = _unary(np.cosh, lambda x, y: sinh(x), "cosh")
tan = _unary(np.tan, lambda x, y: 1 + y * y, "tan")
asin = _unary(np.arcsin, lambda x, y: (1 - x * x) ** -0.5, "asin")
acos = _unary(np.arccos, lambda x, y: -((1 - x * x) ** -0.5), "acos")
atan = _unary(np.arctan, lambda x, y: 1 / (1 + x * x), "atan")
log2 = _unary(np.log2, lambda x, y: 1 / (x * math.log(2)), "log2")
exp2 = _unary(np.exp2, lambda x, y: y * math.log(2), "exp2", "2 ** input, exact for whole exponents.")


class Atan2(Function):
    def forward(self, y, x):
        return np.arctan2(y, x)

    def backward(self, g):
        y, x = self.inputs
        scale = g / (x * x + y * y)
        need_y, need_x = self.needs_input_grad
        return (sum_to(scale * x, y.shape) if need_y else None,
                sum_to(-scale * y, x.shape) if need_x else None)


def atan2(input, other):
    """The angle of the point (other, input), in (-pi, pi].

    >>> f"{lamina.atan2(lamina.tensor(1.0), lamina.tensor(-1.0)).item():.4f}"
    '2.3562'
    """
    y, x = _pair(_tensor(input, "atan2"), other)
    return Atan2()(_floating(y), _floating(x))


arctan2 = atan2


# --- division's relatives ---------------------------------------------------------------------------------
class Remainder(Function):
    """a mod b: with the sign of b (remainder, Python's %) or of a (fmod, C's). d/db = -round_down(a / b)."""

    def __init__(self, ufunc):
        self.ufunc = ufunc

    @property
    def name(self):
        return "remainder" if self.ufunc is np.remainder else "fmod"

    def forward(self, a, b):
        return self.ufunc(a, b)

    def backward(self, gy):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        whole = (floor if self.ufunc is np.remainder else trunc)(a / b)
        return (sum_to(gy, a.shape) if need_a else None,
                sum_to(-gy * whole, b.shape) if need_b else None)


def remainder(input, other):
    """input mod other with the sign of other, as Python's % (and PyTorch's `%`).

    >>> lamina.remainder(lamina.tensor([-3, 3]), 2).tolist(), (lamina.tensor([-3.0]) % 2).tolist()
    ([1, 1], [1.0])
    """
    return Remainder(np.remainder)(*_pair(input, other))


def fmod(input, other):
    """input mod other with the sign of input, as C's fmod."""
    return Remainder(np.fmod)(*_pair(input, other))


def floor_divide(input, other):
    """floor(input / other): integers stay integers, floats give whole floats (zero gradient, as PyTorch's).

    >>> (lamina.tensor([-3, 3]) // 2).tolist()
    [-2, 1]
    """
    a, b = _pair(input, other)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if (b.array == 0).any():
            raise ZeroDivisionError("floor_divide: integer division by zero")
        return wrap(np.floor_divide(a.array, b.array))
    return floor(_true_div(a, b))


def div(input, other, *, rounding_mode=None):
    """input / other; rounding_mode "trunc" or "floor" rounds the quotient (integers then stay integers).

    >>> lamina.div(lamina.tensor([-7, 7]), 2, rounding_mode="trunc").tolist()
    [-3, 3]
    """
    if rounding_mode is None:
        return _true_div(input, other)
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', not {rounding_mode!r}")
    a, b = _pair(input, other)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if (b.array == 0).any():
            raise ZeroDivisionError("div: integer division by zero")
        return wrap((np.trunc(a.array / b.array)).astype(np.result_type(a.array, b.array)))
    return trunc(_true_div(a, b))


divide = div
true_divide = _true_div


def reciprocal(input):
    """1 / input; integers give float32."""
    return _true_div(1.0, _floating(_tensor(input, "reciprocal")))


def rsqrt(input):
    """1 / sqrt(input)."""
    return pow(_floating(_tensor(input, "rsqrt")), -0.5)


def square(input):
    return mul(input, input)


def float_power(input, exponent):
    """input ** exponent computed in float64, as PyTorch's float_power."""
    if isinstance(input, Tensor):
        input = input.to(np.float64)
    if isinstance(exponent, Tensor):
        exponent = exponent.to(np.float64)
    return pow(input, exponent)


# --- combinations ---------------------------------------------------------------------------------------
def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def lerp(input, end, weight):
    """input + weight * (end - input)."""
    return input + weight * (end - input)


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2."""
    return input + value * tensor1 * tensor2 if value != 1 else input + tensor1 * tensor2


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2."""
    return input + value * tensor1 / tensor2 if value != 1 else input + tensor1 / tensor2


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by `nan`, `posinf` and `neginf` (default: the dtype's largest and smallest).

    >>> lamina.nan_to_num(lamina.tensor([float("nan"), 1.0, -float("inf")]), neginf=-9.0).tolist()
    [0.0, 1.0, -9.0]
    """
    x = _tensor(input, "nan_to_num")
    if x.dtype.kind not in "fc":
        return x
    info = np.finfo(x.dtype)
    values = x.array
    fill = np.where(np.isnan(values), nan, np.where(values > 0, info.max if posinf is None else posinf,
                                                    info.min if neginf is None else neginf)).astype(x.dtype)
    return where(isfinite(x), x, wrap(fill))


def subtract(input, other, *, alpha=1):
    return sub(input, other if alpha == 1 else other * alpha)


multiply, negative = mul, neg
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
absolute = abs


def _bitwise(ufunc, name):
    def bitwise(input, other):
        a, b = _pair(_tensor(input, name), other)
        if a.dtype.kind not in "biu" or b.dtype.kind not in "biu":
            raise TypeError(f"{name}: needs integer or bool tensors, not {a.dtype} and {b.dtype}")
        return wrap(ufunc(a.array, b.array))

    bitwise.__name__ = name
    bitwise.__doc__ = f"Elementwise {name.split('_')[1]} of the bits of integers, of the truth of bools."
    return bitwise


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def bitwise_not(input):
    """~input: logical not of bools, bitwise not of integers.

    >>> (~lamina.tensor([True, False])).tolist()
    [False, True]
    """
    x = _tensor(input, "bitwise_not")
    if x.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: needs an integer or bool tensor, not {x.dtype}")
    return wrap(np.invert(x.array))
