"""Forward values and gradients against PyTorch on the same inputs (skipped without PyTorch)."""

import numpy as np
import pytest
from op_cases import CASES, make_inputs

import lamina

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_torch(case):
    arrays = make_inputs(case, seed=1)
    ours = [lamina.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_out = _as_tuple(case.fn(lamina, *ours))
    theirs_out = _as_tuple((case.torch_fn or case.fn)(torch, *theirs))
    rng = np.random.default_rng(2)
    cotangents = [rng.standard_normal(o.shape) for o in ours_out]
    for o, t in zip(ours_out, theirs_out):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    sum((o * v).sum() for o, v in zip(ours_out, cotangents)).backward()
    sum((t * torch.tensor(v)).sum() for t, v in zip(theirs_out, cotangents)).backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.detach().numpy(), t.grad.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_second_derivative_matches_torch():
    x = np.random.default_rng(3).standard_normal((3, 4))
    ours = lamina.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    (g,) = lamina.grad((ours.tanh() * ours.sigmoid()).sum(), ours, create_graph=True)
    (g.exp().sum()).backward()
    (tg,) = torch.autograd.grad((theirs.tanh() * theirs.sigmoid()).sum(), theirs, create_graph=True)
    (tg.exp().sum()).backward()
    np.testing.assert_allclose(ours.grad.detach().numpy(), theirs.grad.detach().numpy(), rtol=1e-10)
