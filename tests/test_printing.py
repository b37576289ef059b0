"""A tensor prints as PyTorch prints it: number format, width, wrapping, summarising and suffixes."""

import numpy as np
import pytest

import lamina


def _cases(m):
    """The same tensors built with lamina or torch (m)."""
    return [
        m.tensor([1.0, 2.0, 3.5]), m.tensor([[1e-5, 2.0, 300000.0]]), m.tensor([True, False]), m.tensor([1, -10]),
        m.zeros(3), m.tensor([1.0, float("nan"), float("inf")]), m.tensor([0.5, float("nan")]),
        m.arange(2000.0).reshape(2, 1000), m.arange(12.0).reshape(2, 3, 2), m.tensor(2.0),
        m.tensor(2.5, dtype=m.float64), m.zeros(0, 3), m.zeros(0), m.zeros(0, dtype=m.int64),
        m.arange(30.0) / 7, m.tensor([1e9, 2.0]), m.tensor([123456789.0]), m.arange(30),
        m.ones(2, 2, requires_grad=True), m.tensor(True), m.tensor([[1, 2], [3, 4]], dtype=m.int32),
        m.arange(2000.0).reshape(10, 10, 20), m.arange(3000), m.arange(24.0).reshape(2, 3, 4) / 3 - 2,
        m.tensor([-0.0, 1e-3]), m.tensor([[1e-3, 1e-1, 5.0], [-2.0, 3.3, 1e2]], dtype=m.float64),
        m.tensor(float("nan")), m.tensor([float("-inf"), 2.0]), m.arange(40, dtype=m.float64).reshape(2, 20) * 1e5,
    ]


def test_pytorch_layouts_pinned():
    assert repr(lamina.tensor([1.0, 2.0, 3.5])) == "tensor([1.0000, 2.0000, 3.5000])"
    assert repr(lamina.tensor([[1e-5, 2.0, 3e5]])) == "tensor([[1.0000e-05, 2.0000e+00, 3.0000e+05]])"
    assert repr(lamina.tensor([True, False])) == "tensor([ True, False])"
    assert repr(lamina.zeros(3)) == "tensor([0., 0., 0.])"
    assert repr(lamina.tensor([0.5, float("nan")])) == "tensor([0.5000,    nan])"
    assert repr(lamina.tensor(2.5, dtype=lamina.float64)) == "tensor(2.5000, dtype=lamina.float64)"
    assert repr(lamina.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(lamina.arange(12.0).reshape(2, 3, 2)) == (
        "tensor([[[ 0.,  1.],\n         [ 2.,  3.],\n         [ 4.,  5.]],\n\n"
        "        [[ 6.,  7.],\n         [ 8.,  9.],\n         [10., 11.]]])")
    assert repr(lamina.arange(3000)) == "tensor([   0,    1,    2,  ..., 2997, 2998, 2999])"
    y = lamina.ones(2, requires_grad=True) * 2
    assert repr(y) == "tensor([2., 2.], grad_fn=<MulBackward0>)"
    assert str(lamina.nn.Parameter(lamina.ones(1))) == "Parameter containing:\ntensor([1.], requires_grad=True)"


def test_printoptions():
    try:
        lamina.set_printoptions(precision=2)
        assert repr(lamina.tensor([1.23456, 2.0])) == "tensor([1.23, 2.00])"
        lamina.set_printoptions(sci_mode=True)  # precision stays; sci_mode is always set
        assert repr(lamina.tensor([1.5])) == "tensor([1.50e+00])"
        lamina.set_printoptions(profile="full")
        assert "..." not in repr(lamina.arange(5000))
        with pytest.raises(ValueError, match="profile"):
            lamina.set_printoptions(profile="long")
    finally:
        lamina.set_printoptions(profile="default")
    assert lamina.get_printoptions()["precision"] == 4


@pytest.mark.parametrize("options", [{}, {"profile": "short", "linewidth": 40}, {"precision": 6, "threshold": 10},
                                     {"edgeitems": 1, "threshold": 20}, {"sci_mode": False, "precision": 2},
                                     {"sci_mode": True}])
def test_same_text_as_pytorch(options):
    torch = pytest.importorskip("torch")
    try:
        lamina.set_printoptions(**options)
        torch.set_printoptions(**options)
        for ours, theirs in zip(_cases(lamina), _cases(torch)):
            assert repr(ours) == repr(theirs).replace("torch.", "lamina."), repr(theirs)
    finally:
        lamina.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


def test_numpy_conversion_refused_while_tracked():
    w = lamina.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(w)
    assert np.asarray(w.detach()).tolist() == [1.0, 1.0]
    assert np.asarray(lamina.ones(2) * 3).tolist() == [3.0, 3.0]


def test_graph_nodes_have_pytorchs_names():
    torch = pytest.importorskip("torch")

    def names(m):
        x = m.ones(3, 4, requires_grad=True)
        made = [x + 1, x * 2, x.sum(), x.relu(), x[0], x[:, 1:], x[0, 1:], x[m.tensor([0, 1])], x @ x.T,
                x.reshape(12), m.nn.functional.cross_entropy(x, m.tensor([0, 1, 2])), x**2, x.exp(),
                m.nn.functional.linear(x, m.ones(2, 4), m.ones(2)), x.mean(), x.sigmoid(), x.tanh()]
        return [repr(t).split("grad_fn=")[1] for t in made]

    assert names(lamina) == names(torch)


def test_shapes_are_sizes_as_in_pytorch():
    x = lamina.ones(3, 4)
    assert repr(x.shape) == str(x.size()) == f"{x.shape}" == "lamina.Size([3, 4])"
    assert x.shape == (3, 4) and isinstance(x.shape, tuple) and x.shape[1] == 4 and x.size(0) == 3
    assert x.shape.numel() == 12 and lamina.Size([]).numel() == 1 and repr(lamina.ones(()).shape) == "lamina.Size([])"
    torch = pytest.importorskip("torch")
    assert repr(torch.ones(3, 4).shape).replace("torch.", "lamina.") == repr(x.shape)
