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


# issue 12's layers: the same state-dict keys, the same outputs and input gradients given the same weights
LAYERS = [
    (lambda m: m.ReLU6(), (2, 5)), (lambda m: m.Hardtanh(-0.5, 2.0), (2, 5)), (lambda m: m.Softplus(2.0, 5.0), (2, 5)),
    (lambda m: m.SELU(), (2, 5)), (lambda m: m.CELU(0.7), (2, 5)), (lambda m: m.Mish(), (2, 5)),
    (lambda m: m.Hardswish(), (2, 5)), (lambda m: m.LogSigmoid(), (2, 5)), (lambda m: m.Softmin(dim=1), (2, 5)),
    (lambda m: m.Softsign(), (2, 5)), (lambda m: m.Tanhshrink(), (2, 5)), (lambda m: m.Threshold(0.2, -1.0), (2, 5)),
    (lambda m: m.GLU(dim=1), (2, 6)), (lambda m: m.PReLU(), (2, 5)), (lambda m: m.PReLU(3, init=0.1), (2, 3, 4)),
    (lambda m: m.PixelShuffle(2), (1, 8, 2, 3)), (lambda m: m.PixelUnshuffle(2), (1, 2, 4, 6)),
    (lambda m: m.ZeroPad2d((1, 2, 0, 1)), (1, 2, 3, 4)), (lambda m: m.ConstantPad1d(2, 0.5), (2, 3, 4)),
    (lambda m: m.ConstantPad2d((1, 0, 2, 1), -1.0), (1, 2, 3, 4)), (lambda m: m.ReflectionPad1d((2, 1)), (2, 3, 4)),
    (lambda m: m.ReflectionPad2d(1), (1, 2, 3, 4)), (lambda m: m.ReplicationPad2d((2, 0, 1, 3)), (1, 2, 3, 4)),
    (lambda m: m.AdaptiveMaxPool2d((2, 3)), (2, 3, 5, 7)), (lambda m: m.AdaptiveAvgPool1d(3), (2, 3, 7)),
    (lambda m: m.InstanceNorm1d(3), (2, 3, 6)), (lambda m: m.InstanceNorm2d(3, affine=True), (2, 3, 4, 5)),
    (lambda m: m.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 5)),
    (lambda m: m.Sequential(m.Linear(4, 6), m.PReLU(6), m.Linear(6, 4), m.Hardswish()), (3, 4)),
]


@pytest.mark.parametrize("build, shape", LAYERS, ids=lambda v: "" if isinstance(v, tuple) else repr(v(nn)))
def test_new_layers_match_torch(build, shape):
    ours, theirs = _pair(build)
    theirs.double().train()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in
                                                                          theirs.state_dict().items()}
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.double().train()
    x = np.random.default_rng(1).standard_normal(shape) * 2
    ox, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = ours(ox), theirs(tx)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-7, atol=1e-10)
    cotangent = np.random.default_rng(2).standard_normal(out.shape)
    (out * lamina.tensor(cotangent)).sum().backward()
    (tout * torch.tensor(cotangent)).sum().backward()
    np.testing.assert_allclose(ox.grad.detach().numpy(), tx.grad.detach().numpy(), rtol=1e-7, atol=1e-10)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.detach().numpy(), tp.grad.detach().numpy(), rtol=1e-7, atol=1e-10,
                                   err_msg=name)


def test_distances_kl_div_and_unpooling_match_torch():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    for ours, theirs in [(nn.CosineSimilarity(dim=1), tnn.CosineSimilarity(dim=1)),
                         (nn.PairwiseDistance(p=1.0, keepdim=True), tnn.PairwiseDistance(p=1.0, keepdim=True))]:
        np.testing.assert_allclose(ours(lamina.tensor(a), lamina.tensor(b)).numpy(),
                                   theirs(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-7)
    log_probs = np.log(rng.dirichlet(np.ones(5), size=4))
    target = rng.dirichlet(np.ones(5), size=4)
    target[0, 1] = 0.0  # 0 * log(0) counts as 0
    for reduction in ("batchmean", "sum", "none"):
        np.testing.assert_allclose(
            nn.KLDivLoss(reduction=reduction)(lamina.tensor(log_probs), lamina.tensor(target)).numpy(),
            tnn.KLDivLoss(reduction=reduction)(torch.tensor(log_probs), torch.tensor(target)).numpy(), rtol=1e-7)
    x = rng.standard_normal((2, 3, 4, 6))
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(lamina.tensor(x))
    tpooled, tindices = tnn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(indices.numpy(), tindices.numpy())
    np.testing.assert_allclose(nn.MaxUnpool2d(2)(pooled, indices).numpy(),
                               tnn.MaxUnpool2d(2)(tpooled, tindices).numpy())


def test_parameter_containers_name_parameters_as_torch():
    ours = nn.ParameterList([nn.Parameter(lamina.ones(2)), lamina.zeros(3)])
    theirs = tnn.ParameterList([tnn.Parameter(torch.ones(2)), torch.zeros(3)])
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0", "1"]
    assert isinstance(ours[1], nn.Parameter) and len(ours) == 2 and ours[1].requires_grad
    params = nn.ParameterDict({"scale": nn.Parameter(lamina.ones(1)), "shift": lamina.zeros(1)})
    model = nn.Module()
    model.extra = params
    assert [name for name, _ in model.named_parameters()] == ["extra.scale", "extra.shift"] and "scale" in params
    with pytest.raises(TypeError, match="ParameterList: holds Parameters or tensors, not list"):
        nn.ParameterList([[1.0]])


def test_instance_norm_running_statistics_match_torch():
    x = np.random.default_rng(4).standard_normal((3, 2, 5)) * 3 + 1
    ours = nn.InstanceNorm1d(2, track_running_stats=True, momentum=0.2).double()
    theirs = tnn.InstanceNorm1d(2, track_running_stats=True, momentum=0.2).double()
    for _ in range(2):
        ours(lamina.tensor(x)), theirs(torch.tensor(x))
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-7, err_msg=key)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(lamina.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=1e-7)


def _printed_model(m):
    layers = [m.nn.Conv2d(1, 8, 3, padding=1), m.nn.BatchNorm2d(8), m.nn.ReLU(), m.nn.MaxPool2d(2), m.nn.Dropout(0.25),
              m.nn.Flatten(), m.nn.Linear(8, 4, bias=False), m.nn.LayerNorm(4), m.nn.Embedding(5, 3),
              m.nn.LSTM(3, 4, num_layers=2, batch_first=True), m.nn.GRU(3, 4), m.nn.Softmax(dim=1),
              m.nn.LogSoftmax(1), m.nn.LeakyReLU(0.1), m.nn.BatchNorm1d(4, affine=False), m.nn.AvgPool2d(2),
              m.nn.AdaptiveAvgPool2d((1, 1)), m.nn.Conv1d(2, 3, 5, stride=2), m.nn.ConvTranspose2d(2, 3, 2, stride=2),
              m.nn.Identity(), m.nn.Sigmoid(), m.nn.Tanh(), m.nn.GELU(), m.nn.Dropout2d(0.1),
              m.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), m.nn.MultiheadAttention(8, 2),
              m.nn.GroupNorm(2, 4), m.nn.Upsample(scale_factor=2), m.nn.CrossEntropyLoss(), m.nn.MSELoss(),
              m.nn.Unflatten(1, (2, 2)), m.nn.ELU(), m.nn.SiLU(), m.nn.Softplus(), m.nn.PReLU(),
              m.nn.InstanceNorm2d(3), m.nn.InstanceNorm1d(4, affine=True)]
    return str(m.nn.Sequential(*layers))


def test_models_print_as_pytorch_prints_them():
    theirs = _printed_model(torch).replace("NonDynamicallyQuantizableLinear", "Linear")  # a quantization detail
    assert _printed_model(lamina) == theirs
