"""PyTorch-style custom autograd Functions: static forward(ctx, ...) / backward(ctx, ...), Function.apply."""

import numpy as np
import pytest

import lamina


class ScaledExp(lamina.Function):
    """exp(x) * scale, saving its output; a non-tensor argument rides along."""

    @staticmethod
    def forward(ctx, x, scale):
        y = x.exp() * scale
        ctx.save_for_backward(y)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y, None


class SumAndProduct(lamina.Function):
    """Two inputs, two outputs."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.seen_needs = ctx.needs_input_grad
        return a + b, a * b

    @staticmethod
    def backward(ctx, grad_sum, grad_product):
        a, b = ctx.saved_tensors
        return grad_sum + grad_product * b, grad_sum + grad_product * a


def test_apply_matches_the_builtin_op_and_passes_gradcheck():
    x = lamina.randn(3, 4, dtype=lamina.float64, requires_grad=True)
    y = ScaledExp.apply(x, 2.0)
    np.testing.assert_allclose(y.detach().numpy(), 2 * np.exp(x.detach().numpy()))
    assert y.grad_fn.node_name == "ScaledExpBackward" and repr(y.grad_fn).startswith("<ScaledExpBackward object at 0x")
    assert lamina.gradcheck(lambda t: ScaledExp.apply(t, 2.0), [x])


def test_several_inputs_and_outputs_and_needs_input_grad():
    a = lamina.randn(2, 3, dtype=lamina.float64, requires_grad=True)
    b = lamina.randn(2, 3, dtype=lamina.float64)
    total, product = SumAndProduct.apply(a, b)
    assert total.shape == product.shape == (2, 3)
    (total.sum() + (product * 3).sum()).backward()
    np.testing.assert_allclose(a.grad.detach().numpy(), 1 + 3 * b.detach().numpy())
    b.requires_grad_()
    assert lamina.gradcheck(lambda p, q: SumAndProduct.apply(p, q)[1], [a, b])
    ctx_needs = []

    class Probe(SumAndProduct):
        @staticmethod
        def forward(ctx, a, b):
            ctx_needs.append(ctx.needs_input_grad)
            return SumAndProduct.forward(ctx, a, b)

    Probe.apply(a, lamina.ones(2, 3, dtype=lamina.float64))
    assert ctx_needs == [(True, False)]


def test_second_derivatives_through_a_custom_function_raise_instead_of_going_wrong():
    x = lamina.randn(3, dtype=lamina.float64, requires_grad=True)
    (g,) = lamina.grad(ScaledExp.apply(x, 1.0).sum(), x)  # first order is fine
    np.testing.assert_allclose(g.detach().numpy(), np.exp(x.detach().numpy()))
    with pytest.raises(RuntimeError, match="ScaledExp is differentiable once"):
        lamina.grad(ScaledExp.apply(x, 1.0).sum(), x, create_graph=True)


def test_misuse_gets_one_clear_error():
    class Wrong(lamina.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad, grad  # one too many

    x = lamina.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Wrong.backward returned 2 gradients for 1 inputs"):
        Wrong.apply(x).sum().backward()
    with pytest.raises(TypeError, match="apply is for Functions written the PyTorch way"):
        lamina.ops.elementwise.Exp.apply(x)
