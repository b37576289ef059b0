"""How a tensor prints: PyTorch's layout and number format, so a program's printed output reads the same.

The rules are PyTorch's (documented under `torch.set_printoptions`): floats whose nonzero finite values are
all whole numbers print as `1.`; otherwise with `precision` decimals, switching every element to scientific
notation when the largest magnitude is over 1e8, or over 1000 times the smallest, or the smallest is under
1e-4; all elements share one width; rows wrap at `linewidth`; tensors of more than `threshold` elements show
`edgeitems` at each end of every dimension around `...`. The dtype is named only when it is not the default
float, int64 or bool.
"""

import math
from dataclasses import dataclass

import numpy as np

from lamina import backend

PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


@dataclass
class PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


OPTIONS = PrintOptions()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """PyTorch's `set_printoptions`: a profile ("default", "short", "full") then any option given.

    As in PyTorch, `sci_mode` is always set: leaving it out (None) goes back to choosing automatically.

    >>> lamina.set_printoptions(precision=2)
    >>> lamina.tensor([1.23456, 2.0])
    tensor([1.23, 2.00])
    >>> lamina.set_printoptions(profile="default")
    """
    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(PROFILES)}, not {profile!r}")
        OPTIONS.precision, OPTIONS.threshold, OPTIONS.edgeitems, OPTIONS.linewidth = PROFILES[profile]
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            setattr(OPTIONS, name, value)
    OPTIONS.sci_mode = sci_mode


def get_printoptions():
    return dict(vars(OPTIONS))


class _Formatter:
    """One number format and width for every element shown, chosen from the nonzero finite ones."""

    def __init__(self, shown):
        self.floating = shown.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        if not self.floating:
            self.width = max(len(str(v)) for v in shown.ravel().tolist())
        else:
            values = shown[np.isfinite(shown) & (shown != 0)].astype(np.float64)
            if values.size:
                smallest, largest = np.abs(values).min(), np.abs(values).max()
                self.int_mode = bool(np.all(values == np.ceil(values)))
                self.sci_mode = bool(largest / smallest > 1000.0 or largest > 1.0e8
                                     or (not self.int_mode and smallest < 1.0e-4))
                if OPTIONS.sci_mode is not None:  # set_printoptions(sci_mode=...) decides, where any value is shown
                    self.sci_mode = OPTIONS.sci_mode
                whole = self.int_mode and not self.sci_mode  # "3." has one character more than "3"
                self.width = max(len(self._text(v)) + whole for v in values.tolist())

    def _text(self, value):
        if self.sci_mode:
            return f"{value:.{OPTIONS.precision}e}"
        if self.int_mode:
            return f"{value:.0f}"
        return f"{value:.{OPTIONS.precision}f}"

    def format(self, value):
        text = str(value) if not self.floating else self._text(value)
        if self.floating and self.int_mode and not self.sci_mode and math.isfinite(value):
            text += "."
        return text.rjust(self.width)


def _summarized(array, edge):
    """The elements a summarised print shows: `edge` at each end of every dimension."""
    if array.ndim == 0:
        return array
    n = array.shape[0]
    rows = [*range(edge), *range(n - edge, n)] if n > 2 * edge else range(n)
    if array.ndim == 1:
        return array[list(rows)]
    return np.stack([_summarized(array[i], edge) for i in rows])


def _body(array, indent, summarize, formatter):
    if array.ndim == 0:
        return formatter.format(array.item())
    n, edge = array.shape[0], OPTIONS.edgeitems
    cut = summarize and n > 2 * edge
    rows = [*range(edge), None, *range(n - edge, n)] if cut else range(n)
    if array.ndim == 1:
        values = array.tolist()
        texts = [" ..." if i is None else formatter.format(values[i]) for i in rows]
        per_line = max(1, (OPTIONS.linewidth - indent) // (formatter.width + 2))
        lines = [", ".join(texts[i:i + per_line]) for i in range(0, len(texts), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    parts = ["..." if i is None else _body(array[i], indent + 1, summarize, formatter) for i in rows]
    return "[" + ("," + "\n" * (array.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _with_suffixes(text, suffixes, indent):
    """`, dtype=...` after the values, on a new line where the last one would pass `linewidth`."""
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > OPTIONS.linewidth:
            text += ",\n" + " " * indent + suffix
            last_line = indent + len(suffix)
        else:
            text += ", " + suffix
            last_line += len(suffix) + 2
    return text + ")"


def tensor_repr(array, grad_fn=None, requires_grad=False, device=None):
    """`tensor([...], device=..., dtype=..., grad_fn=<...>)` for a NumPy array, laid out as PyTorch lays it out.

    grad_fn: the name of the graph node that made the tensor (`AddBackward0`), or None; device: where the
    tensor lives when that is not the CPU.
    """
    prefix = "tensor("
    dtype_name = f"dtype=lamina.{array.dtype.name}"
    suffixes = [] if device is None else [f"device='{device}'"]
    if array.size == 0:
        if array.ndim != 1:
            suffixes.append(f"size={tuple(array.shape)}")
        if array.dtype != backend.default_float:  # no element says whether it is an int or a float tensor
            suffixes.append(dtype_name)
        body = "[]"
    else:
        if array.dtype not in (backend.default_float, np.int64, np.bool_):
            suffixes.append(dtype_name)
        summarize = array.size > OPTIONS.threshold
        shown = _summarized(array, OPTIONS.edgeitems) if summarize else array
        body = _body(array, len(prefix), summarize, _Formatter(shown))
    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{grad_fn}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, len(prefix))
