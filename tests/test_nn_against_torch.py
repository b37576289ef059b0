"""nn against PyTorch: same state-dict keys and shapes, same outputs, same losses and gradients."""

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
tnn, TF = torch.nn, torch.nn.functional


def _pair(build):
    """The same architecture in both libraries: build(nn_module) is called with each."""
    return build(nn), build(tnn)


ARCHITECTURES = [
    lambda m: m.Sequential(m.Linear(6, 5), m.ReLU(), m.Dropout(0.5), m.Linear(5, 3)),
    lambda m: m.Sequential(m.Flatten(), m.Linear(12, 4), m.GELU(), m.Linear(4, 2), m.LogSoftmax(dim=1)),
    lambda m: m.Sequential(m.Linear(6, 4, bias=False), m.LeakyReLU(0.1), m.Linear(4, 4), m.ELU(), m.Linear(4, 1),
                           m.Sigmoid()),
    lambda m: m.Sequential(m.Linear(6, 4), m.SiLU(), m.Linear(4, 4), m.Tanh(), m.Linear(4, 3), m.Softmax(dim=1)),
]


@pytest.mark.parametrize("build", ARCHITECTURES)
def test_state_dicts_interchange_with_torch(build):
    ours, theirs = _pair(build)
    ours_keys = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_keys = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_keys == theirs_keys
    theirs.double().eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.double().eval()
    x = np.random.default_rng(0).standard_normal((7, 6) if "Flatten" not in repr(ours) else (7, 3, 4))
    np.testing.assert_allclose(ours(lamina.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-9)
    back = tnn.Module.load_state_dict(build(tnn).double(), {k: torch.tensor(v.detach().numpy()) for k, v in
                                                             ours.state_dict().items()})
    assert not back.missing_keys and not back.unexpected_keys


def test_embedding_matches_torch():
    ours, theirs = nn.Embedding(6, 3, padding_idx=1), tnn.Embedding(6, 3, padding_idx=1)
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    idx = np.array([[1, 2, 5], [0, 1, 1]])
    out, tout = ours(lamina.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy())
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.detach().numpy(), theirs.weight.grad.detach().numpy(), rtol=1e-6)


rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((6, 4)) * 3
LOGITS_3D = rng.standard_normal((3, 4, 5))
LABELS = np.array([0, 3, 1, 1, 2, 3])
LABELS_IGNORED = np.array([0, -100, 1, 1, -100, 3])
LABELS_3D = rng.integers(0, 4, (3, 5))
SOFT = rng.dirichlet(np.ones(4), size=6)
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
PROBS = rng.uniform(0.01, 0.99, (5, 3))
BINARY = rng.integers(0, 2, (5, 3)).astype(np.float64)
REGRESS = rng.standard_normal((5, 3))

LOSSES = [
    ("cross_entropy", LOGITS, LABELS, {}),
    ("cross_entropy", LOGITS, LABELS, {"reduction": "sum"}),
    ("cross_entropy", LOGITS, LABELS, {"reduction": "none"}),
    ("cross_entropy", LOGITS, LABELS, {"label_smoothing": 0.1}),
    ("cross_entropy", LOGITS, LABELS, {"weight": WEIGHT}),
    ("cross_entropy", LOGITS, LABELS, {"weight": WEIGHT, "label_smoothing": 0.2}),
    ("cross_entropy", LOGITS, LABELS_IGNORED, {}),
    ("cross_entropy", LOGITS, LABELS_IGNORED, {"label_smoothing": 0.1, "reduction": "sum"}),
    ("cross_entropy", LOGITS, LABELS_IGNORED, {"weight": WEIGHT, "label_smoothing": 0.1}),
    ("cross_entropy", LOGITS, LABELS_IGNORED, {"reduction": "none"}),
    ("cross_entropy", LOGITS, SOFT, {}),
    ("cross_entropy", LOGITS, SOFT, {"label_smoothing": 0.1, "weight": WEIGHT}),
    ("cross_entropy", LOGITS_3D, LABELS_3D, {}),
    ("nll_loss", LOGITS, LABELS, {"weight": WEIGHT}),
    ("nll_loss", LOGITS, LABELS_IGNORED, {"reduction": "sum"}),
    ("binary_cross_entropy", PROBS, BINARY, {}),
    ("binary_cross_entropy", PROBS, BINARY, {"reduction": "none"}),
    ("binary_cross_entropy_with_logits", REGRESS, BINARY, {}),
    ("binary_cross_entropy_with_logits", REGRESS, BINARY, {"pos_weight": np.array([1.0, 2.0, 0.5])}),
    ("binary_cross_entropy_with_logits", REGRESS, BINARY, {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "sum"}),
    ("mse_loss", REGRESS, BINARY, {}),
    ("l1_loss", REGRESS, BINARY, {"reduction": "sum"}),
    ("huber_loss", REGRESS * 2, BINARY, {"delta": 0.7}),
]


@pytest.mark.parametrize("name, input, target, kwargs", LOSSES, ids=lambda v: v if isinstance(v, str) else "")
def test_loss_matches_torch(name, input, target, kwargs):
    def convert(lib, value):
        if isinstance(value, np.ndarray):
            return lamina.tensor(value) if lib == "lamina" else torch.tensor(value)
        return value

    x = lamina.tensor(input, requires_grad=True)
    tx = torch.tensor(input, requires_grad=True)
    out = getattr(F, name)(x, convert("lamina", target), **{k: convert("lamina", v) for k, v in kwargs.items()})
    tout = getattr(TF, name)(tx, convert("torch", target), **{k: convert("torch", v) for k, v in kwargs.items()})
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    (out * lamina.tensor(np.ones(out.shape) * 1.5)).sum().backward()
    (tout * 1.5).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.detach().numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("legacy, reduction", [(dict(size_average=False), "sum"), (dict(reduce=False), "none"),
                                               (dict(size_average=True, reduce=True), "mean")])
def test_legacy_loss_arguments_and_smooth_l1_match_torch(legacy, reduction):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)) * 2
    with pytest.warns(DeprecationWarning):
        ours = lamina.nn.MSELoss(**legacy)
    assert ours.reduction == reduction
    theirs = torch.nn.MSELoss(reduction=reduction)
    np.testing.assert_allclose(ours(lamina.tensor(a), lamina.tensor(b)).detach().numpy(),
                               theirs(torch.tensor(a), torch.tensor(b)).detach().numpy(), rtol=1e-6)
    for beta in (1.0, 0.5, 0.0):
        np.testing.assert_allclose(
            lamina.nn.SmoothL1Loss(reduction=reduction, beta=beta)(lamina.tensor(a), lamina.tensor(b)).detach().numpy(),
            torch.nn.SmoothL1Loss(reduction=reduction, beta=beta)(torch.tensor(a), torch.tensor(b)).detach().numpy(),
            rtol=1e-6)


def test_linear_takes_pytorchs_positional_order_and_relu_inplace():
    layer = lamina.nn.Linear(3, 2, False, None, lamina.float64)
    assert layer.bias is None and layer.weight.dtype == np.float64
    with pytest.raises(ValueError, match="Linear: device 'cuda' is not available"):
        lamina.nn.Linear(3, 2, device="cuda")
    assert lamina.nn.ReLU(inplace=True)(lamina.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
