"""In-place ops keep the object and its memory; the graph and version counters keep gradients honest."""

import numpy as np
import pytest

import lamina


def test_the_hand_written_sgd_idiom_updates_the_same_tensor():
    """The polynomial-fit tutorial: w -= lr * w.grad under no_grad must move w, or the loss never falls."""
    rng = np.random.default_rng(0)
    x = lamina.tensor(np.linspace(-1, 1, 200, dtype=np.float32))
    y = lamina.tensor(np.sin(3 * np.linspace(-1, 1, 200)).astype(np.float32))
    a, b, c = (lamina.tensor(rng.standard_normal(), dtype=lamina.float32, requires_grad=True) for _ in range(3))
    ids = [id(a), id(b), id(c)]
    losses = []
    for _ in range(200):
        loss = ((a + b * x + c * x ** 3 - y) ** 2).sum()
        losses.append(loss.item())
        loss.backward()
        with lamina.no_grad():
            for p in (a, b, c):
                p -= 1e-3 * p.grad
                p.grad = None
    assert [id(a), id(b), id(c)] == ids and all(p.requires_grad and p.is_leaf for p in (a, b, c))
    assert losses[-1] < 0.2 * losses[0]


def test_in_place_methods_write_the_same_memory():
    t = lamina.zeros(2, 3)
    view_of_memory = t.array
    t.add_(1).mul_(3).sub_(lamina.ones(3), alpha=2).div_(2)
    np.testing.assert_array_equal(view_of_memory, np.full((2, 3), 0.5, np.float32))
    t[0] = 7.0
    t[t < 1] = -1.0
    assert t.tolist() == [[7.0, 7.0, 7.0], [-1.0, -1.0, -1.0]] and t.array is view_of_memory
    t.clamp_(min=0)
    t.fill_(2).zero_()
    assert t.detach().numpy().sum() == 0
    t.copy_(lamina.ones(2, 3))
    t.uniform_(-1, 1)
    assert (t.detach().numpy() >= -1).all() and (t.detach().numpy() < 1).all() and t.dtype == lamina.float32
    t.normal_()
    assert t.dtype == lamina.float32 and t.array is view_of_memory


def test_a_leaf_that_requires_grad_refuses_in_place_changes_outside_no_grad():
    w = lamina.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: a leaf tensor that requires grad is being used in an in-place"):
        w += 1
    with lamina.no_grad():
        w += 1
    assert w.tolist() == [2.0, 2.0, 2.0] and w.requires_grad


def test_in_place_on_a_non_leaf_records_the_op_and_gradients_are_right():
    x = lamina.tensor([1.0, 2.0, 3.0], dtype=lamina.float64, requires_grad=True)
    y = x * 2
    y += x * x      # y = 2x + x^2
    y[0] = 0.0      # the first element no longer depends on x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [0.0, 2 + 2 * 2.0, 2 + 2 * 3.0])
    v = lamina.tensor(2.0, requires_grad=True)
    z = lamina.zeros(3)
    z[1] = v        # a tensor that needs no grad takes on the graph of the value written into it
    assert z.requires_grad and not z.is_leaf
    (z * 5).sum().backward()
    assert v.grad.item() == 5.0


def test_changing_a_tensor_saved_for_backward_is_caught_naming_the_op():
    x = lamina.randn(3, requires_grad=True)
    y = x.exp()
    y += 1          # exp's backward reads its output
    with pytest.raises(RuntimeError, match="exp saved for its backward was changed by an in-place operation"):
        y.sum().backward()
    a = lamina.randn(3, requires_grad=True)
    b = a * 1.0
    c = b * b
    b.mul_(2)       # mul saved b itself
    with pytest.raises(RuntimeError, match="mul saved for its backward"):
        c.sum().backward()
    b = (a * 1.0).clone()
    c = b.clone() * b.clone()
    b.mul_(2)       # changing the original leaves the clones alone
    c.sum().backward()


def test_bad_in_place_writes_get_one_clear_error():
    t = lamina.zeros(3, dtype=lamina.int64)
    with pytest.raises(RuntimeError, match="float32 result cannot be written in place into a int64 tensor"):
        t += lamina.ones(3)
    with pytest.raises(RuntimeError, match=r"shape \S+\[2, 3\]\), which cannot be written in place .* \S+\[3\]\)"):
        t += lamina.zeros(2, 3, dtype=lamina.int64)


@pytest.mark.torch
def test_the_idiom_matches_torch():
    torch = pytest.importorskip("torch")
    start = np.array([0.5, -0.3], np.float32)
    ours, theirs = lamina.tensor(start, requires_grad=True), torch.tensor(start, requires_grad=True)
    for w, lib in ((ours, lamina), (theirs, torch)):
        for _ in range(20):
            loss = ((w * w).sum() - 1) ** 2
            loss.backward()
            with lib.no_grad():
                w -= 0.05 * w.grad
                w.grad = None
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5)


def _write_through_view(kind):
    x = lamina.randn(4, 3, requires_grad=True)
    y = x * 1
    if kind == "view of an input":
        saved = y.sin()
        y.permute(1, 0).add_(1)
    elif kind == "view of an output":
        saved = y.exp()
        saved[0].mul_(2)
    elif kind == "detached":
        saved = y.sin()
        y.detach().add_(1)
    elif kind == "base of a saved view":
        saved = y.permute(1, 0).sin()
        y.add_(1)
    else:  # "sibling view": PyTorch counts writes per memory, so a write to y[1] is seen by y[0]'s users
        saved = y[0].sin()
        y[1].add_(1)
    saved.sum().backward()


@pytest.mark.parametrize("kind", ["view of an input", "view of an output", "detached", "base of a saved view",
                                  "sibling view"])
def test_in_place_writes_through_views_are_seen_at_backward(kind):
    with pytest.raises(RuntimeError, match="saved for its backward was changed by an in-place operation"):
        _write_through_view(kind)


def test_writes_through_data_are_not_tracked_as_in_pytorch():
    x = lamina.randn(2, 3, requires_grad=True)
    y = x * 1
    saved = y.sin()
    y.data.add_(1)  # .data is the untracked way, as in PyTorch
    saved.sum().backward()
    assert x.grad is not None
