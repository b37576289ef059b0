"""Padding layers, as torch.nn names them: F.pad with a fixed mode and widths (left, right[, top, bottom])."""

from lamina.nn import functional as F
from lamina.nn.module import Module


class _Pad(Module):
    mode, dims = "constant", 2

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = tuple(padding) if isinstance(padding, (tuple, list)) else (int(padding),) * (2 * self.dims)
        if len(self.padding) != 2 * self.dims:
            raise ValueError(f"{type(self).__name__}: padding must be an int or {2 * self.dims} ints, got {padding}")
        self.value = value

    def forward(self, x):
        if x.ndim not in (self.dims + 1, self.dims + 2):
            raise ValueError(f"{type(self).__name__}: expects a {self.dims + 1}-D or {self.dims + 2}-D input, got "
                             f"shape {x.shape}")
        return F.pad(x, self.padding, self.mode, self.value)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


class ConstantPad1d(_Pad):
    dims = 1

    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad2d(_Pad):
    def __init__(self, padding, value):
        super().__init__(padding, value)


class ZeroPad1d(_Pad):
    dims = 1

    def __init__(self, padding):
        super().__init__(padding)


class ZeroPad2d(_Pad):
    def __init__(self, padding):
        super().__init__(padding)


class ReflectionPad1d(_Pad):
    mode, dims = "reflect", 1

    def __init__(self, padding):
        super().__init__(padding)


class ReflectionPad2d(_Pad):
    mode = "reflect"

    def __init__(self, padding):
        super().__init__(padding)


class ReplicationPad1d(_Pad):
    mode, dims = "replicate", 1

    def __init__(self, padding):
        super().__init__(padding)


class ReplicationPad2d(_Pad):
    mode = "replicate"

    def __init__(self, padding):
        super().__init__(padding)
