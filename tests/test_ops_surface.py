"""Issue 12's ops that give indices, bools, counts or Python values (no gradient to check): values and dtypes
against PyTorch on the same calls, bad input refused by name, and the gradient hooks."""

import numpy as np
import pytest

import lamina

X = np.array([[3.0, 1.0, 2.0, 1.0], [0.0, 5.0, -1.0, 5.0], [2.5, -0.5, 1.5, 0.5]])
INTS = np.array([[2, 1, 1, 2], [3, 3, 0, 1]])
NAN = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])

# fn(L) runs the same code against lamina or torch; the results are compared value by value and dtype by dtype
CALLS = {
    "sort_indices": lambda L: L.sort(L.tensor(X), dim=1, descending=True, stable=True).indices,
    "sort_ints_stable": lambda L: L.sort(L.tensor(INTS), stable=True)[1],
    "argsort": lambda L: L.tensor(X).argsort(dim=0),
    "topk_indices": lambda L: L.topk(L.tensor(X), 2).indices,
    "kthvalue_indices": lambda L: L.tensor(X).kthvalue(3, dim=1).indices,
    "median_indices": lambda L: L.median(L.tensor(X), 0).indices,
    "median_ints": lambda L: L.median(L.tensor(INTS)),
    "mode": lambda L: tuple(L.mode(L.tensor(INTS), 1)),
    "cummax_indices": lambda L: L.cummax(L.tensor(X), 1).indices,
    "all_any": lambda L: (L.tensor(INTS).all(), L.tensor(INTS).any(dim=1), L.all(L.tensor(X) > -2, 0, keepdim=True)),
    "isnan_isinf_isfinite": lambda L: (L.isnan(L.tensor(NAN)), L.isinf(L.tensor(NAN)), L.tensor(NAN).isfinite()),
    "nan_to_num": lambda L: L.nan_to_num(L.tensor(NAN), nan=2.0, posinf=9.0),
    "nonzero": lambda L: L.nonzero(L.tensor(INTS)),
    "nonzero_tuple": lambda L: L.nonzero(L.tensor(INTS), as_tuple=True),
    "where_condition_only": lambda L: L.where(L.tensor(X) > 1),
    "count_nonzero": lambda L: (L.count_nonzero(L.tensor(INTS)), L.count_nonzero(L.tensor(INTS), dim=0)),
    "bincount": lambda L: (L.bincount(L.tensor([0, 3, 3, 1])), L.bincount(L.tensor([0, 2]), minlength=4),
                           L.bincount(L.tensor([0, 1, 1]), weights=L.tensor([0.5, 1.0, 2.0]))),
    "unique": lambda L: L.unique(L.tensor(INTS), return_inverse=True, return_counts=True),
    "unique_dim": lambda L: L.unique(L.tensor([[1, 2], [1, 2], [0, 5]]), dim=0),
    "sum_prod_cumsum_of_ints": lambda L: (L.tensor([True, True]).sum(), L.tensor(INTS).prod(1),
                                          L.tensor(INTS, dtype=L.int32).cumsum(0), L.tensor(INTS).cumprod(1)),
    "rounding_of_ints": lambda L: (L.floor(L.tensor(INTS)), L.round(L.tensor([0.5, 1.5, 2.5, -0.5])),
                                   L.sign(L.tensor([-2, 0, 3])), L.trunc(L.tensor([-1.7, 1.7]))),
    "remainder_floor_divide": lambda L: (L.remainder(L.tensor([5, -5]), 3), L.tensor([5, -5]) % 3,
                                         5 % L.tensor([3, -3]), L.tensor([-7, 7]) // 2, L.tensor([-7.0, 7.0]) // 2,
                                         7 // L.tensor([2, -2]),
                                         L.fmod(L.tensor([-7, 7]), 3)),
    "div_rounding_modes": lambda L: (L.div(L.tensor([-7, 7]), 2, rounding_mode="trunc"),
                                     L.tensor([-7.0, 7.0]).div(2, rounding_mode="floor"),
                                     L.true_divide(L.tensor([1]), 2),
                                     L.divide(L.tensor([-7.0]), 2, rounding_mode="trunc")),
    "logical_and_bitwise": lambda L: (L.logical_and(L.tensor(INTS), L.tensor(INTS) > 1), L.logical_not(L.tensor(INTS)),
                                      L.logical_xor(L.tensor([True, False]), L.tensor([True, True])),
                                      ~(L.tensor(INTS) > 1), (L.tensor(INTS) > 1) | (L.tensor(INTS) == 0),
                                      L.tensor(INTS) & 1, L.tensor(INTS) ^ 3),
    "isclose": lambda L: L.isclose(L.tensor([1.0, 2.0, float("nan")]), L.tensor([1.0, 2.1, float("nan")]),
                                   equal_nan=True),
    "comparison_aliases": lambda L: (L.greater(L.tensor(X), 1), L.less(L.tensor(X), 1), L.not_equal(L.tensor(X), 1),
                                     L.greater_equal(L.tensor(X), 1), L.less_equal(L.tensor(X), 1)),
    "float_power": lambda L: L.float_power(L.tensor([2, 3]), 2),
    "diff_of_bools": lambda L: L.diff(L.tensor([True, False, False, True])),
    "diag_of_ints": lambda L: (L.diag(L.tensor([1, 2]), -1), L.trace(L.tensor(INTS[:, :2]))),
    "repeat_interleave_counts_only": lambda L: L.repeat_interleave(L.tensor([2, 0, 1])),
    "masked_select_broadcast": lambda L: L.masked_select(L.tensor(X), L.tensor([True, False, True, False])),
    "index_select_ints": lambda L: L.index_select(L.tensor(INTS), 0, L.tensor([1, 1, 0])),
    "type_as_bool": lambda L: (L.tensor(INTS).type_as(L.tensor(X)), L.tensor(INTS).bool(), L.tensor(X).ndimension()),
    "scatter_add_by_reduce": lambda L: L.zeros(2, 3).scatter(1, L.tensor([[0, 0], [2, 1]]), L.ones(2, 2), reduce="add"),
}


def _plain(value):
    """A result as nested lists of (dtype name, values), so lamina's and torch's compare directly."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)):
        return ("python", value)
    array = np.asarray(value.detach().numpy())
    return (str(array.dtype), array.shape, array.tolist())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = _plain(CALLS[name](lamina)), _plain(CALLS[name](torch))
    np.testing.assert_equal(ours, theirs)


def test_return_types_name_their_fields():
    x = lamina.tensor(X)
    for result in (x.sort(), x.topk(1), x.kthvalue(1), x.median(0), x.mode(), x.cummax(0)):
        values, indices = result
        assert result.values is values and result.indices is indices and indices.dtype == np.int64


def test_predicates_and_python_values():
    x = lamina.tensor(X)
    assert lamina.allclose(x, x + 1e-9) and not lamina.allclose(x, x + 1) and lamina.equal(x, x.clone())
    assert not lamina.equal(x, x[:2]) and lamina.is_tensor(x) and not lamina.is_tensor(X)
    assert lamina.numel(x) == 12 and lamina.is_floating_point(x) and not lamina.tensor(INTS).is_floating_point()
    assert lamina.get_default_dtype() == lamina.float32
    lamina.set_default_dtype(lamina.float32)
    with pytest.raises(NotImplementedError, match="set_default_dtype: lamina's default float dtype is float32"):
        lamina.set_default_dtype(lamina.float64)
    with pytest.raises(TypeError, match="half\\(\\): .*float16 tensors are not supported"):
        x.half()
    assert lamina.empty_like(x).shape == x.shape and lamina.empty_like(x, dtype=lamina.int64).dtype == np.int64
    assert x.stride() == (4, 1) and x.element_size() == 8 and x.nbytes == 96 and x.is_contiguous()


def test_bernoulli_draws_from_lamina_generator():
    p = lamina.full((2000,), 0.3)
    draws = lamina.bernoulli(p, generator=lamina.Generator().manual_seed(0))
    assert draws.dtype == np.float32 and set(draws.tolist()) == {0.0, 1.0} and 0.25 < draws.mean().item() < 0.35
    again = lamina.bernoulli(p, generator=lamina.Generator().manual_seed(0))
    assert again.tolist() == draws.tolist()
    assert lamina.zeros(500).bernoulli_(0.5).mean().item() > 0.4
    with pytest.raises(ValueError, match="bernoulli: probabilities must lie in"):
        lamina.bernoulli(lamina.tensor([1.5]))


def test_in_place_variants_change_the_tensor():
    t = lamina.zeros(2, 3)
    assert t.scatter_(1, lamina.tensor([[2], [0]]), 1.0) is t and t.tolist() == [[0, 0, 1], [1, 0, 0]]
    t.scatter_add_(1, lamina.tensor([[2, 2]]), lamina.ones(1, 2)).index_add_(0, lamina.tensor([1]), lamina.ones(1, 3))
    assert t.tolist() == [[0, 0, 3], [2, 1, 1]]
    assert t.neg_().abs_().pow_(2).sqrt_().clamp_max_(2.5).round_().tolist() == [[0, 0, 2], [2, 1, 1]]
    leaf = lamina.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="exp_: a leaf tensor that requires grad"):
        leaf.exp_()


@pytest.mark.parametrize("call, error, message", [
    (lambda: lamina.topk(lamina.ones(3), 4), ValueError, "topk: k \\(4\\) must lie in \\[0, 3\\]"),
    (lambda: lamina.kthvalue(lamina.ones(3), 0), ValueError, "kthvalue: k \\(0\\) must lie in \\[1, 3\\]"),
    (lambda: lamina.sort(lamina.ones(3), dim=2), IndexError, "sort: dim 2 is out of range"),
    (lambda: lamina.index_select(lamina.ones(3), 0, lamina.tensor([3])), IndexError, "index_select: index holds"),
    (lambda: lamina.index_select(lamina.ones(3), 0, lamina.tensor([0.5])), TypeError, "index_select: index must be"),
    (lambda: lamina.scatter(lamina.ones(2, 2), 1, lamina.tensor([[2]]), 1.0), IndexError, "scatter: index holds"),
    (lambda: lamina.scatter(lamina.ones(2, 2), 1, lamina.tensor([0]), 1.0), ValueError, "scatter: index of shape"),
    (lambda: lamina.index_add(lamina.ones(2, 2), 0, lamina.tensor([0]), lamina.ones(2, 2)), ValueError,
     "index_add: source has shape"),
    (lambda: lamina.masked_select(lamina.ones(2), lamina.tensor([1, 0])), TypeError, "masked_select: mask must be"),
    (lambda: lamina.bmm(lamina.ones(2, 3), lamina.ones(2, 3, 1)), ValueError, "bmm: input must be 3-D"),
    (lambda: lamina.dot(lamina.ones(2), lamina.ones(3)), ValueError, "dot: lengths differ"),
    (lambda: lamina.bincount(lamina.tensor([-1, 2])), ValueError, "bincount: input must not hold negative"),
    (lambda: lamina.repeat_interleave(lamina.ones(3), lamina.tensor([1, 2]), 0), ValueError,
     "repeat_interleave: repeats must be"),
    (lambda: lamina.ones(2, 2).repeat(2), ValueError, "repeat: 1 repetitions given for a tensor of 2 dims"),
    (lambda: lamina.div(lamina.ones(2), 2, rounding_mode="round"), ValueError, "div: rounding_mode must be"),
    (lambda: lamina.floor_divide(lamina.tensor([1]), lamina.tensor([0])), ZeroDivisionError, "floor_divide"),
    (lambda: lamina.ones(2) & lamina.ones(2), TypeError, "bitwise_and: needs integer or bool tensors"),
    (lambda: lamina.flip(lamina.ones(2, 2), (0, 0)), ValueError, "flip: dims \\(0, 0\\) name the same dim twice"),
    (lambda: lamina.where(lamina.ones(2) > 0, lamina.ones(2)), TypeError, "where: give both input and other"),
    (lambda: lamina.ones(2).register_hook(print), RuntimeError, "register_hook: cannot register a hook"),
])
def test_bad_input_gets_one_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_hooks_see_and_replace_gradients_as_in_pytorch():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.tolist()))
    doubled = x.register_hook(lambda g: g * 2)
    y = x * 3
    y.register_hook(lambda g: g + 1)
    y.retain_grad()
    assert y.retains_grad and not x.retains_grad
    (y * x).sum().backward()  # x is used twice: its hooks see the summed gradient once
    assert seen == [[9.0, 15.0]] and x.grad.tolist() == [18.0, 30.0] and y.grad.tolist() == [2.0, 3.0]
    handle.remove()
    doubled.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert seen == [[9.0, 15.0]] and x.grad.tolist() == [3.0, 3.0]
    x.register_hook(lambda g: g * 0)
    (g,) = lamina.grad((x * x).sum(), x)
    assert g.tolist() == [0.0, 0.0]
