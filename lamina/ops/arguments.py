"""PyTorch's calling conventions, given to the public op functions in one place.

PyTorch's functions take their operands by keyword too (`torch.matmul(input=a, other=b)`); its C++-backed
functions also take NumPy's spellings `axis=` for `dim=` and `keepdims=` for `keepdim=` (`x.sum(axis=1)`), while
its Python-level ones (`torch.norm`) refuse them; and many take `out=`, a tensor the result is written into.
`torch_arguments` wraps an op function so that it behaves the same way; a call with positional arguments only
goes straight through.
"""

import functools

from lamina.autograd import Tensor, _InPlace, is_grad_enabled, no_grad, wrap

NUMPY_SPELLINGS = {"axis": "dim", "keepdims": "keepdim"}


def torch_arguments(fn, names=(), numpy_spellings=None, out=False):
    """`fn` with PyTorch's conventions.

    names: PyTorch's keyword names of fn's leading positional parameters ("input", "other").
    numpy_spellings: True to accept axis=/keepdims= as PyTorch's C++ functions do, False to refuse them with
    an error naming PyTorch's spelling, None to leave fn's own arguments alone.
    out: accept out=, a tensor the result is written into in place.

    >>> lamina.matmul(input=lamina.ones(2, 3), other=lamina.ones(3)).tolist()
    [3.0, 3.0]
    >>> lamina.ones(2, 3).sum(axis=1, keepdims=True).shape
    lamina.Size([2, 1])
    """
    name = fn.__name__
    positions = {n: i for i, n in enumerate(names)}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not kwargs:
            return fn(*args)  # the common case, at the cost of one test
        if positions and positions.keys() & kwargs.keys():
            args = _place_positional(name, names, args, kwargs)
        if numpy_spellings is not None:
            _respell(name, kwargs, numpy_spellings)
        target = kwargs.pop("out", None) if out else None
        if target is None:
            return fn(*args, **kwargs)
        return write_out(name, fn, args, kwargs, target)

    return call


def _place_positional(name, names, args, kwargs):
    args = list(args)
    for i, keyword in enumerate(names):
        if keyword not in kwargs:
            continue
        if i != len(args):
            raise TypeError(f"{name}() got {keyword}= by keyword and also an argument in its place")
        args.append(kwargs.pop(keyword))
    return tuple(args)


def _respell(name, kwargs, accepted):
    for numpy_name, torch_name in NUMPY_SPELLINGS.items():
        if numpy_name not in kwargs:
            continue
        if not accepted:
            raise TypeError(f"{name}() got an unexpected keyword argument {numpy_name!r}; "
                            f"PyTorch spells it {torch_name}=")
        if torch_name in kwargs:
            raise TypeError(f"{name}() got both {torch_name}= and its NumPy spelling {numpy_name}=")
        kwargs[torch_name] = kwargs.pop(numpy_name)


def write_out(name, fn, args, kwargs, target):
    """Compute fn(*args, **kwargs) and write it into `target`, as PyTorch's out= does.

    Like PyTorch, out= records no graph, so it refuses to run when grad mode is on and an operand (or the
    target) requires grad; the target is changed in place (same object, its version counter moves).
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}(): out= must be a tensor, not {type(target).__name__}")
    operands = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
    operands += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, Tensor)]
    if is_grad_enabled() and (target.requires_grad or any(t.requires_grad for t in operands)):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    with no_grad():
        result = fn(*args, **kwargs)
    return target._in_place(_InPlace(f"{name}(out=)"), lambda t: wrap(result.array))
