"""More activation layers, as torch.nn names them: each holds its arguments and calls its functional form."""

from lamina.creation import full
from lamina.nn import functional as F
from lamina.nn.module import Module, Parameter


class _Activation(Module):
    """An activation whose forward is F.<function>(x, *arguments); `arguments` names the attributes it passes."""

    function, arguments = None, ()

    def forward(self, x):
        return getattr(F, self.function)(x, *[getattr(self, name) for name in self.arguments])

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)}" for name in self.arguments)


class Hardtanh(_Activation):
    function, arguments = "hardtanh", ("min_val", "max_val")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} must not exceed max_val {max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class ReLU6(_Activation):
    function = "relu6"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace  # accepted, as ReLU's: the result is the same, in new memory


class Softplus(_Activation):
    function, arguments = "softplus", ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold


class SELU(_Activation):
    function = "selu"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class CELU(_Activation):
    function, arguments = "celu", ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class Mish(_Activation):
    function = "mish"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardswish(_Activation):
    function = "hardswish"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Hardsigmoid(_Activation):
    function = "hardsigmoid"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class LogSigmoid(_Activation):
    function = "logsigmoid"


class Softsign(_Activation):
    function = "softsign"


class Tanhshrink(_Activation):
    function = "tanhshrink"


class Softmin(_Activation):
    function, arguments = "softmin", ("dim",)

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim


class Threshold(_Activation):
    function, arguments = "threshold", ("threshold", "value")

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace


class GLU(_Activation):
    function, arguments = "glu", ("dim",)

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim


class PReLU(Module):
    """max(0, x) + weight * min(0, x) with a learned weight: one for all channels, or one per channel.

    >>> lamina.nn.PReLU(3)(lamina.tensor([[-4.0, 1.0, -2.0]])).tolist()
    [[-1.0, 1.0, -0.5]]
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(full((num_parameters,), init, dtype=dtype))

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
