"""Every op in the table: forward against NumPy, dtype kept, first and second derivatives checked."""

import numpy as np
import pytest
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
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-10, atol=1e-12)


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
