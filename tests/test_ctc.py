"""CTC loss: against brute-force enumeration of alignments, gradient checks, PyTorch equality, long inputs,
bad input, and a model that learns to read with it."""

import itertools

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

rng = np.random.default_rng(0)


def _log_probs(steps, batch, classes, dtype=np.float64):
    z = rng.standard_normal((steps, batch, classes))
    return (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(dtype)


def _brute_force(log_probs, target, blank=0):
    """-log of the summed probability of every frame labelling that collapses to `target`."""
    steps, classes = log_probs.shape
    total = 0.0
    for path in itertools.product(range(classes), repeat=steps):
        collapsed = [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]
        if collapsed == list(target):
            total += np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
    return -np.log(total)


@pytest.mark.parametrize("target", [[1, 2], [1, 1], [2], [], [1, 2, 1]])
def test_matches_brute_force_enumeration(target):
    lp = _log_probs(5, 1, 3)
    loss = F.ctc_loss(lamina.tensor(lp), np.array([target + [0] * (3 - len(target))]), [5], [len(target)],
                      reduction="none")
    np.testing.assert_allclose(loss.detach().numpy()[0], _brute_force(lp[:, 0], target), rtol=1e-10)


def test_blank_other_than_zero_and_unbatched_input():
    lp = _log_probs(4, 1, 3)
    loss = F.ctc_loss(lamina.tensor(lp[:, 0]), np.array([0, 1]), 4, 2, blank=2, reduction="sum")
    np.testing.assert_allclose(loss.item(), _brute_force(lp[:, 0], [0, 1], blank=2), rtol=1e-10)


@pytest.mark.parametrize("reduction,concatenated", [("mean", False), ("sum", True), ("none", False)])
def test_gradcheck(reduction, concatenated):
    lp = lamina.tensor(_log_probs(6, 3, 4), requires_grad=True)
    targets = np.array([[1, 1, 2], [3, 0, 0], [2, 3, 0]])
    target_lengths, input_lengths = [3, 1, 2], [6, 4, 5]
    if concatenated:
        targets = np.array([1, 1, 2, 3, 2, 3])
    fn = lambda lp: F.ctc_loss(lp, targets, input_lengths, target_lengths, reduction=reduction)  # noqa: E731
    assert lamina.gradcheck(fn, [lp])


def test_second_order_is_refused_clearly():
    lp = lamina.tensor(_log_probs(3, 1, 3), requires_grad=True)
    loss = F.ctc_loss(lp, [[1]], [3], [1])
    with pytest.raises(RuntimeError, match="ctc_loss: .*differentiable once only"):
        lamina.autograd.grad(loss, lp, create_graph=True)


def test_long_inputs_stay_finite_in_float32():
    steps = 3000
    lp = _log_probs(steps, 2, 6, np.float32)
    targets = rng.integers(1, 6, (2, 200))
    loss = F.ctc_loss(lamina.tensor(lp, requires_grad=True), targets, [steps, steps - 500], [200, 150],
                      reduction="none")
    loss64 = F.ctc_loss(lamina.tensor(lp.astype(np.float64)), targets, [steps, steps - 500], [200, 150],
                        reduction="none")
    assert loss.dtype == np.float32 and np.isfinite(loss.detach().numpy()).all()
    np.testing.assert_allclose(loss.detach().numpy(), loss64.detach().numpy(), rtol=1e-4)
    loss.sum().backward()


def test_impossible_alignments_give_inf_or_zero():
    lp = lamina.tensor(_log_probs(3, 2, 3), requires_grad=True)
    targets, lengths = [[1, 1, 1], [1, 2, 0]], [3, 2]  # three 1s need 5 frames (blanks between repeats)
    losses = F.ctc_loss(lp, targets, [3, 3], lengths, reduction="none").detach().numpy()
    assert np.isinf(losses[0]) and np.isfinite(losses[1])
    zeroed = F.ctc_loss(lp, targets, [3, 3], lengths, reduction="sum", zero_infinity=True)
    zeroed.backward()
    np.testing.assert_allclose(zeroed.item(), losses[1])
    assert (lp.grad.detach().numpy()[:, 0] == 0).all() and np.isfinite(lp.grad.detach().numpy()).all()


def test_bad_input_names_the_problem():
    lp = lamina.tensor(_log_probs(3, 2, 4))
    with pytest.raises(ValueError, match=r"ctc_loss: the target of sequence 1 \(4 labels\) is longer than its "
                                         r"input \(3 frames\)"):
        F.ctc_loss(lp, [[1, 0, 0, 0], [1, 2, 3, 1]], [3, 3], [1, 4])
    assert F.ctc_loss(lp, [[1, 0, 0, 0], [1, 2, 3, 1]], [3, 3], [1, 4], zero_infinity=True,
                      reduction="none").detach().numpy()[1] == 0
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\) and not be the blank \(0\)"):
        F.ctc_loss(lp, [[1, 0], [1, 0]], [3, 3], [2, 1])
    with pytest.raises(ValueError, match=r"input_lengths must lie in \[1, 3\]"):
        F.ctc_loss(lp, [[1], [1]], [4, 3], [1, 1])
    with pytest.raises(ValueError, match=r"target_lengths must hold one integer per sequence \(2\)"):
        F.ctc_loss(lp, [[1], [1]], [3, 3], [1])
    with pytest.raises(ValueError, match=r"blank 4 is not a class"):
        F.ctc_loss(lp, [[1], [1]], [3, 3], [1, 1], blank=4)


def test_a_linear_reader_learns_to_transcribe():
    """Frames show a label (one-hot, 2-3 frames each) with an empty frame between labels; a Linear layer trained
    with CTC and read by greedy decoding transcribes every sequence, repeated labels included."""
    lamina.manual_seed(0)
    data = np.random.default_rng(1)
    sequences, frames = [], []
    for _ in range(32):
        labels = list(data.integers(1, 4, 3))
        x = []
        for label in labels:
            x += [np.eye(4)[label]] * int(data.integers(2, 4)) + [np.eye(4)[0]]
        x += [np.eye(4)[0]] * (12 - len(x))
        sequences.append(labels)
        frames.append(x)
    x = lamina.tensor(np.array(frames, dtype=np.float32).transpose(1, 0, 2))  # (T, N, 4)
    model, ctc = nn.Linear(4, 4), nn.CTCLoss()
    opt = lamina.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(60):
        loss = ctc(F.log_softmax(model(x), -1), np.array(sequences), [12] * 32, [3] * 32)
        opt.zero_grad()
        loss.backward()
        opt.step()
    best = model(x).detach().numpy().argmax(-1).T
    decoded = [[int(c) for i, c in enumerate(row) if c != 0 and (i == 0 or c != row[i - 1])] for row in best]
    assert decoded == [[int(c) for c in s] for s in sequences]


# --- against PyTorch ----------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("reduction,zero_infinity,blank", [("mean", False, 0), ("sum", True, 0), ("none", False, 3),
                                                           ("mean", True, 2)])
def test_matches_torch_loss_and_gradient_through_log_softmax(reduction, zero_infinity, blank):
    torch = pytest.importorskip("torch")
    steps, batch, classes = 12, 4, 5
    logits = rng.standard_normal((steps, batch, classes))
    labels = [c for c in range(classes) if c != blank]
    targets = rng.choice(labels, (batch, 6))
    targets[1, :3] = labels[0]  # repeats
    input_lengths, target_lengths = [12, 9, 12, 5], [6, 3, 0, 3 if zero_infinity else 2]
    if zero_infinity:
        targets[3, :3] = labels[1]  # three repeats in 5 frames: impossible, so inf, zeroed
    zt = torch.tensor(logits, requires_grad=True)
    theirs = torch.nn.functional.ctc_loss(zt.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths),
                                          torch.tensor(target_lengths), blank=blank, reduction=reduction,
                                          zero_infinity=zero_infinity)
    zl = lamina.tensor(logits, requires_grad=True)
    ours = nn.CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)(
        F.log_softmax(zl, -1), targets, input_lengths, target_lengths)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-9)
    g = rng.standard_normal(ours.shape)
    (theirs * torch.tensor(g)).sum().backward()
    (ours * lamina.tensor(g)).sum().backward()
    np.testing.assert_allclose(zl.grad.detach().numpy(), zt.grad.detach().numpy(), rtol=1e-8, atol=1e-12)
