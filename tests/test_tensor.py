"""Tensor basics, creation functions, dtype rules and error messages."""

import numpy as np
import pytest

import lamina


def test_attributes_and_conversions():
    t = lamina.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3 and len(t) == 2
    assert t.dtype == lamina.float32 and t.is_leaf and t.grad is None and t.grad_fn is None
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert np.asarray(t.detach()).shape == (2, 3) and isinstance(t.detach().numpy(), np.ndarray)
    assert t[1, 2].item() == 6.0
    y = t * 2
    assert not y.is_leaf and "grad_fn=<MulBackward0>" in repr(y)
    assert "dtype" not in repr(y)  # float32 is the default dtype: not named, as in PyTorch
    assert "requires_grad=True" in repr(t)
    assert y.detach().requires_grad is False
    assert [row.shape for row in t] == [(3,), (3,)]


def test_dtype_rules():
    assert lamina.tensor(1.5).dtype == lamina.float32
    assert lamina.tensor([1.0, 2]).dtype == lamina.float32
    assert lamina.tensor([1, 2]).dtype == lamina.int64
    assert lamina.tensor([True, False]).dtype == lamina.bool
    assert lamina.tensor(np.zeros(2)).dtype == lamina.float64  # an array keeps its dtype
    assert lamina.tensor([1, 2], dtype=lamina.float64).dtype == lamina.float64
    x = lamina.ones(3)
    for y in (x + 1, 2.5 * x, x / 3, x**2, 1 - x, x.exp(), x.mean()):
        assert y.dtype == lamina.float32
    ints = lamina.tensor([1, 2, 3])
    assert (ints + 1).dtype == lamina.int64
    assert (ints * 0.5).dtype == lamina.float32  # not float64, as in PyTorch
    assert (ints / ints).dtype == lamina.float32
    assert ints.exp().dtype == lamina.float32
    assert (lamina.ones(2, dtype=lamina.float64) * 2).dtype == lamina.float64


def test_creation_functions():
    assert lamina.zeros(2, 3).shape == (2, 3) and lamina.zeros((2, 3)).dtype == lamina.float32
    assert lamina.ones(4).detach().numpy().sum() == 4
    assert lamina.full((2, 2), 7.0).detach().numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert lamina.full((2,), 7).dtype == lamina.int64
    like = lamina.tensor([[1.0, 2.0]], dtype=lamina.float64)
    assert lamina.zeros_like(like).dtype == lamina.float64 and lamina.ones_like(like).shape == (1, 2)
    assert lamina.arange(5).dtype == lamina.int64 and lamina.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert lamina.arange(0, 1, 0.25).dtype == lamina.float32
    assert lamina.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_array_equal(lamina.eye(3).detach().numpy(), np.eye(3))
    assert lamina.rand(3, 4).dtype == lamina.float32 and lamina.randn(3, 4).dtype == lamina.float32
    r = lamina.randint(0, 10, (100,))
    assert r.dtype == lamina.int64 and 0 <= r.detach().numpy().min() and r.detach().numpy().max() < 10
    assert lamina.randint(3, size=(5,)).detach().numpy().max() < 3


def test_manual_seed_makes_draws_repeatable():
    lamina.manual_seed(42)
    a = lamina.randn(5).detach().numpy().copy(), lamina.rand(2).detach().numpy().copy()
    lamina.manual_seed(42)
    b = lamina.randn(5).detach().numpy(), lamina.rand(2).detach().numpy()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_tensor_copies_but_as_tensor_shares():
    array = np.zeros(3, dtype=np.float32)
    lamina.tensor(array).data[0] = 1
    assert array[0] == 0
    lamina.as_tensor(array).data[0] = 1
    assert array[0] == 1


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        lamina.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        lamina.arange(3).requires_grad_()


def test_comparisons_give_bool_tensors_without_grad():
    x = lamina.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (x > 2, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert result.dtype == lamina.bool and not result.requires_grad
    assert (x > 1.5).tolist() == [False, True, True]
    assert lamina.argmax(lamina.tensor([[1, 5, 2], [7, 0, 1]]), dim=1).tolist() == [1, 0]
    assert lamina.tensor([3.0, 1.0, 2.0]).argmin().item() == 1
    assert x.max(dim=0).indices.item() == 2


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: lamina.ones(2, 3) @ lamina.ones(4, 5), r"matmul: shapes \S+Size\(\[2, 3\]\) and \S+Size\(\[4, 5\]\)"),
        (lambda: lamina.ones(2, 3) + lamina.ones(4), r"add: .*lamina\.Size\(\[2, 3\]\), lamina\.Size\(\[4\]\)"),
        (lambda: lamina.ones(2, 3) * lamina.ones(2, 2), r"mul: .*lamina\.Size\(\[2, 3\]\), lamina\.Size\(\[2, 2\]\)"),
        (lambda: lamina.ones(2, 3).reshape(4, 2), r"reshape: cannot reshape tensor of shape lamina\.Size\(\[2, 3\]\)"),
        (lambda: lamina.cat([lamina.ones(2, 3), lamina.ones(2, 4)]), r"cat: tensor 1 has shape \S+\[2, 4\].*\[2, 3\]"),
        (lambda: lamina.stack([lamina.ones(2), lamina.ones(3)]), r"stack: tensor 1 has shape lamina\.Size\(\[3\]\)"),
        (lambda: lamina.ones(2).expand(3, 4), r"broadcast_to: shape \S+Size\(\[2\]\) cannot be broadcast to \(3, 4\)"),
        (lambda: lamina.ones(2, 3).sum(dim=2), r"sum: dim 2 is out of range"),
        (lambda: lamina.ones(3).item(), r"item\(\): tensor of shape lamina\.Size\(\[3\]\)"),
    ],
)
def test_shape_errors_name_the_op_and_shapes(make, pattern):
    with pytest.raises((ValueError, IndexError), match=pattern):
        make()


def test_index_errors_name_the_op():
    with pytest.raises(IndexError, match="getitem"):
        lamina.ones(3)[5]
