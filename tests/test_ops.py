"""Every op in the table: forward against NumPy, dtype kept, first and second derivatives checked."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from op_cases import CASES, make_inputs

import lamina


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_matches_numpy(case):
    arrays = make_inputs(case)
    got = _as_tuple(case.fn(lamina, *[lamina.tensor(a) for a in arrays]))
    want = _as_tuple(case.ref(*arrays))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w)
        np.testing.assert_allclose(g.detach().numpy(), w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_float32_stays_float32(case):
    tensors = [lamina.tensor(a, requires_grad=True) for a in make_inputs(case, np.float32)]
    outputs = _as_tuple(case.fn(lamina, *tensors))
    assert all(out.dtype == lamina.float32 for out in outputs)
    sum(out.sum() for out in outputs).backward()
    for t in tensors:
        assert t.grad is not None and t.grad.dtype == lamina.float32


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_gradcheck(case):
    tensors = [lamina.tensor(a, requires_grad=True) for a in make_inputs(case)]
    assert lamina.gradcheck(lambda *xs: case.fn(lamina, *xs), tensors)


@pytest.mark.parametrize("case", [c for c in CASES if c.second_order], ids=repr)
def test_gradgradcheck(case):
    tensors = [lamina.tensor(a, requires_grad=True) for a in make_inputs(case)]
    assert lamina.gradgradcheck(lambda *xs: case.fn(lamina, *xs), tensors)


@settings(max_examples=40, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_broadcasting_gradients_for_any_shapes(shapes):
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(0)
    a = lamina.tensor(rng.standard_normal(a_shape), requires_grad=True)
    b = lamina.tensor(rng.uniform(0.5, 2.0, b_shape), requires_grad=True)
    assert lamina.gradcheck(lambda x, y: (x * y - x / y + y).tanh(), [a, b])
    out = a * b
    assert out.shape == shapes.result_shape
    out.sum().backward()
    assert a.grad.shape == a_shape and b.grad.shape == b_shape
