"""The backward walk: graph shapes, accumulation, freeing, grad modes, higher order, anomalies."""

import numpy as np
import pytest

import lamina
from lamina import Function, Tensor


def test_tensor_used_twice_accumulates():
    x = lamina.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * np.array([1, 2, 3]) + 1)


def test_many_uses_sum_correctly_and_shared_gradients_stay_unchanged():
    # Sums of three or more gradients are added in place into the array the walk made; a gradient that
    # another tensor also holds (Add hands the same array to both operands) must never be written.
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    other = lamina.tensor([5.0, 6.0], requires_grad=True)
    h = x * 1.0  # an op output used four times
    shared = h + other  # its gradient array goes to both h and other
    (shared.sum() + (h * 2).sum() + (h * 3).sum() + (x * 4).sum() + x.sum()).backward()
    np.testing.assert_allclose(other.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), [1 + 2 + 3 + 4 + 1] * 2)
    h = x * 1.0
    (g,) = lamina.grad((h * 2).sum() + (h * 3).sum() + h.sum() + x.sum(), x)
    np.testing.assert_allclose(g.numpy(), [7.0, 7.0])
    np.testing.assert_allclose(x.grad.numpy(), [11.0, 11.0])  # grad() left .grad alone


def test_diamond_processes_each_node_once():
    calls = []

    class Spy(Function):
        def forward(self, a):
            return a * 1

        def backward(self, gy):
            calls.append(1)
            return gy

    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    top = Spy()(x)
    left, right = top * 2, top * 3
    (left + right).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.detach().numpy(), [5.0, 5.0])


def test_deep_chain_has_no_recursion_limit():
    x = lamina.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**10_000, rel=1e-3)


def test_gradients_accumulate_across_backward_calls():
    x = lamina.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [6.0, 6.0])


def test_graph_is_freed_and_second_backward_raises():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [4.0, 8.0])


def test_no_grad_records_nothing_and_works_as_decorator():
    x = lamina.tensor([1.0], requires_grad=True)
    with lamina.no_grad():
        y = x * 2
        with lamina.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @lamina.no_grad()
    def double(t):
        return t * 2

    assert double(x).grad_fn is None

    @lamina.no_grad
    def triple(t):
        return t * 3

    assert triple(x).grad_fn is None and triple.__name__ == "triple"
    assert lamina.is_grad_enabled()


def test_backward_on_non_scalar_needs_gradient():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(lamina.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 20.0])


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lamina.tensor([1.0]).sum().backward()


def test_retain_grad_keeps_non_leaf_gradient():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.detach().numpy(), [6.0, 12.0])
    m = x * 4
    (m * 2).sum().backward()
    assert m.grad is None  # not retained: PyTorch's default


def test_grad_returns_without_touching_dot_grad():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    w = lamina.tensor([3.0, 4.0], requires_grad=True)
    gx, gw = lamina.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.detach().numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gw.detach().numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_grad_of_non_leaf_input():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (gh,) = lamina.grad((h * h).sum(), [h])
    np.testing.assert_allclose(gh.detach().numpy(), [4.0, 8.0])


def test_grad_unused_input():
    x = lamina.tensor([1.0], requires_grad=True)
    unused = lamina.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        lamina.grad((x * 2).sum(), [x, unused])
    assert lamina.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


def test_create_graph_gives_second_derivative():
    x = lamina.tensor([0.5, -1.0], requires_grad=True)
    y = (x**3).sum()
    (g,) = lamina.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 6 * x.detach().numpy())


def test_backward_create_graph_makes_grad_differentiable():
    x = lamina.tensor([2.0], requires_grad=True)
    (x.sin()).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g,) = lamina.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), -np.sin(2.0))


def test_same_leaf_twice_in_one_op_gets_separate_grad_arrays():
    a = lamina.tensor([1.0, 2.0], requires_grad=True)
    b = lamina.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 2  # an optimizer clipping a in place must not change b
    np.testing.assert_allclose(b.grad.detach().numpy(), [1.0, 1.0])


def test_detach_cuts_the_graph():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    (x * y).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [2.0, 4.0])


def test_detect_anomaly_names_forward_op():
    x = lamina.tensor([-1.0, 1.0], requires_grad=True)
    with lamina.detect_anomaly(), np.errstate(invalid="ignore"), pytest.raises(RuntimeError, match="log"):
        x.log()
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().detach().numpy()[0])  # outside the context nothing is checked


def test_detect_anomaly_names_backward_op():
    x = lamina.tensor([0.0, 1.0], requires_grad=True)
    with lamina.detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt().sum()
        with pytest.raises(RuntimeError, match="sqrt backward"):
            y.backward()


def test_gradcheck_catches_a_wrong_backward():
    class BadSquare(Function):
        def forward(self, a):
            return a * a

        def backward(self, gy):
            return gy * self.inputs[0] * 3  # should be 2

    x = lamina.randn(2, 3, dtype=lamina.float64, requires_grad=True)
    with pytest.raises(lamina.GradcheckError, match=r"input 0 of shape lamina\.Size\(\[2, 3\]\).*analytic.*numeric"):
        lamina.gradcheck(lambda t: BadSquare()(t), [x])


def test_gradgradcheck_catches_a_wrong_double_backward():
    class FrozenSquare(Function):
        def forward(self, a):
            return a * a

        def backward(self, gy):  # right value, but detached: no second derivative
            return gy * Tensor(2 * self.inputs[0].data)

    x = lamina.randn(3, dtype=lamina.float64, requires_grad=True)
    assert lamina.gradcheck(lambda t: FrozenSquare()(t), [x])
    with pytest.raises(lamina.GradcheckError):
        lamina.gradgradcheck(lambda t: FrozenSquare()(t), [x])


def test_three_layer_network_stays_float32():
    rng = np.random.default_rng(0)
    x = lamina.tensor(rng.standard_normal((8, 5)).astype(np.float32))
    params = [lamina.randn(5, 7, requires_grad=True), lamina.zeros(7, requires_grad=True),
              lamina.randn(7, 7, requires_grad=True), lamina.zeros(7, requires_grad=True),
              lamina.randn(7, 1, requires_grad=True), lamina.zeros(1, requires_grad=True)]
    h = x
    for i in range(0, 6, 2):
        h = (h @ params[i] + params[i + 1]).tanh() if i < 4 else h @ params[i] + params[i + 1]
        assert h.dtype == lamina.float32
    loss = lamina.binary_cross_entropy_with_logits(h, lamina.ones(8, 1))
    assert loss.dtype == lamina.float32
    loss.backward()
    assert all(p.grad.dtype == lamina.float32 for p in params)


def test_tiny_network_learns_xor():
    x = lamina.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = lamina.tensor([[0.0], [1.0], [1.0], [0.0]])
    w1, b1 = lamina.randn(2, 8, requires_grad=True), lamina.zeros(8, requires_grad=True)
    w2, b2 = lamina.randn(8, 1, requires_grad=True), lamina.zeros(1, requires_grad=True)
    for _ in range(500):
        loss = lamina.binary_cross_entropy_with_logits((x @ w1 + b1).tanh() @ w2 + b2, y)
        for p in (w1, b1, w2, b2):
            p.grad = None
        loss.backward()
        for p in (w1, b1, w2, b2):
            p.data -= 0.5 * p.grad.data
    assert loss.item() < 0.05
    predictions = (((x @ w1 + b1).tanh() @ w2 + b2) > 0).detach().numpy()
    np.testing.assert_array_equal(predictions, y.detach().numpy() > 0.5)
