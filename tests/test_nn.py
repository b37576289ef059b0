"""Modules, layers, initializers, losses and nn.utils."""

import numpy as np
import pytest
from layer_check import check_layer

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

LAYERS = [
    (lambda: nn.Linear(5, 3), (4, 5)),
    (lambda: nn.Linear(5, 3, bias=False), (2, 4, 5)),
    (lambda: nn.ReLU(), (4, 5)),
    (lambda: nn.LeakyReLU(0.2), (4, 5)),
    (lambda: nn.ELU(0.7), (4, 5)),
    (lambda: nn.GELU(), (4, 5)),
    (lambda: nn.GELU("tanh"), (4, 5)),
    (lambda: nn.SiLU(), (4, 5)),
    (lambda: nn.Tanh(), (4, 5)),
    (lambda: nn.Sigmoid(), (4, 5)),
    (lambda: nn.Softmax(dim=1), (4, 5)),
    (lambda: nn.LogSoftmax(dim=-1), (4, 5)),
    (lambda: nn.Flatten(), (2, 3, 4)),
    (lambda: nn.Unflatten(1, (2, 3)), (4, 6)),
    (lambda: nn.Identity(), (3, 2)),
    (lambda: nn.Dropout(0.0), (3, 2)),
    (lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)), (3, 5)),
    (lambda: nn.Sequential(nn.Linear(5, 4), nn.PReLU(4), nn.Linear(4, 2), nn.Mish()), (3, 5)),
    (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.InstanceNorm1d(3, affine=True), nn.SELU()), (2, 2, 6)),
    (lambda: nn.Sequential(nn.ConvTranspose1d(2, 3, 3, stride=2), nn.Softplus(), nn.ReflectionPad1d(1)), (2, 2, 4)),
    (lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.PixelShuffle(2), nn.AdaptiveMaxPool2d(3)), (2, 1, 3, 3)),
]


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_layer(make, shape):
    check_layer(make, shape)


def test_module_registration_order_and_traversal():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(3, 4)
            self.scale = nn.Parameter(lamina.ones(4))
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 1)})
            self.register_buffer("counter", lamina.zeros(1))

        def forward(self, x):
            h = self.first(x) * self.scale
            for block in self.blocks:
                h = block(h)
            return self.heads["a"](h)

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "blocks.0.weight", "blocks.0.bias",
                     "heads.a.weight", "heads.a.bias"]
    assert list(net.state_dict())[:2] == ["scale", "counter"]  # own weights and buffers, then children
    assert len(list(net.children())) == 3 and len(list(net.modules())) == 7
    assert net(lamina.randn(2, 3)).shape == (2, 1)
    net.eval()
    assert not net.blocks[0].training
    net.train()
    assert net.heads["a"].training
    assert "(first): Linear(in_features=3, out_features=4, bias=True)" in repr(net)


def test_shared_parameter_counted_once():
    layer = nn.Linear(2, 2)
    net = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(net.parameters())) == 2


def test_zero_grad_and_hooks():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    seen = []
    handle = net[0].register_forward_hook(lambda m, inputs, out: seen.append(out.shape))
    net(lamina.randn(4, 3)).sum().backward()
    assert seen == [(4, 2)] and net[0].weight.grad is not None
    net.zero_grad()
    assert net[0].weight.grad is None
    handle.remove()
    net(lamina.randn(4, 3))
    assert len(seen) == 1
    doubled = nn.Linear(3, 2)
    doubled.register_forward_hook(lambda m, inputs, out: out * 2)
    x = lamina.randn(1, 3)
    expected = 2 * F.linear(x, doubled.weight, doubled.bias).detach().numpy()
    np.testing.assert_allclose(doubled(x).detach().numpy(), expected)


def test_load_state_dict_errors_name_keys_and_shapes():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    state = net.state_dict()
    del state["1.weight"]
    with pytest.raises(KeyError, match="missing key 1.weight"):
        net.load_state_dict(state)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    state["0.weight"] = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"0.weight has shape \(5, 4\) in the state dict, \(3, 4\) in the model"):
        net.load_state_dict(state)
    state = dict(net.state_dict(), extra=np.zeros(1))
    with pytest.raises(KeyError, match="unexpected key extra"):
        net.load_state_dict(state)
    assert net.load_state_dict(state, strict=False).unexpected_keys == ["extra"]


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"Linear\(4, 2\): input of shape lamina\.Size\(\[3, 5\]\)"):
        nn.Linear(4, 2)(lamina.randn(3, 5))


def test_linear_default_init_bounds():
    layer = nn.Linear(100, 50)
    assert layer.weight.dtype == lamina.float32 and layer.weight.shape == (50, 100)
    assert np.abs(layer.weight.detach().numpy()).max() <= 0.1 and np.abs(layer.bias.detach().numpy()).max() <= 0.1
    assert layer.weight.detach().numpy().std() > 0.04  # U(-0.1, 0.1) has std 0.058


def test_dropout_train_and_eval():
    layer = nn.Dropout(0.5)
    x = lamina.ones(1000)
    y = layer(x).detach().numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    assert layer(x).dtype == lamina.float32
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), x.detach().numpy())


def test_embedding_padding_row_gets_no_gradient():
    emb = nn.Embedding(5, 3, padding_idx=0)
    out = emb(lamina.tensor([[0, 2, 2], [4, 0, 1]]))
    assert out.shape == (2, 3, 3)
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.detach().numpy()[0], 0)
    np.testing.assert_array_equal(emb.weight.grad.detach().numpy()[2], 2)
    with pytest.raises(IndexError, match="embedding"):
        emb(lamina.tensor([5]))


@pytest.mark.parametrize("name, fn, fan", [
    ("xavier_uniform_", lambda t: nn.init.xavier_uniform_(t), np.sqrt(2 / (300 + 200))),
    ("xavier_normal_", lambda t: nn.init.xavier_normal_(t), np.sqrt(2 / (300 + 200))),
    ("kaiming_uniform_", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), np.sqrt(2 / 300)),
    ("kaiming_normal_", lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), np.sqrt(2 / 300)),
    ("normal_", lambda t: nn.init.normal_(t, 0.0, 0.3), 0.3),
    ("uniform_", lambda t: nn.init.uniform_(t, -0.5, 0.5), 1 / np.sqrt(12)),
])
def test_initializers_have_the_right_spread(name, fn, fan):
    t = lamina.empty(200, 300)
    assert fn(t) is t
    assert t.dtype == lamina.float32
    assert abs(t.detach().numpy().std() - fan) < 0.05 * fan


def test_zeros_and_ones_init():
    t = lamina.empty(3, 4)
    assert nn.init.zeros_(t).detach().numpy().sum() == 0 and nn.init.ones_(t).detach().numpy().sum() == 12


def test_losses_stable_for_huge_logits():
    logits = lamina.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], requires_grad=True)
    loss = F.cross_entropy(logits, lamina.tensor([1, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(logits.grad.detach().numpy()).all()
    assert loss.item() == pytest.approx(1e4, rel=1e-5)
    z = lamina.tensor([1e4, -1e4, 1e4], requires_grad=True)
    bce = F.binary_cross_entropy_with_logits(z, lamina.tensor([0.0, 1.0, 1.0]))
    bce.backward()
    assert bce.item() == pytest.approx(2e4 / 3, rel=1e-5) and np.isfinite(z.grad.detach().numpy()).all()
    p = lamina.tensor([0.0, 1.0], requires_grad=True)
    assert F.binary_cross_entropy(p, lamina.tensor([1.0, 0.0])).item() == pytest.approx(100.0)


def test_loss_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"mse_loss: input shape \S+Size\(\[3\]\) and target shape \S+Size\(\[4\]\)"):
        F.mse_loss(lamina.zeros(3), lamina.zeros(4))
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        F.cross_entropy(lamina.zeros(2, 3), lamina.tensor([0, 3]))
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(lamina.tensor([2.0]), lamina.tensor([1.0]))


def test_clip_grad_norm_and_value():
    a, b = lamina.ones(3, requires_grad=True), lamina.ones(4, requires_grad=True)
    a.grad, b.grad = lamina.full((3,), 3.0), lamina.full((4,), 4.0)
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert total.item() == pytest.approx(np.sqrt(9 * 3 + 16 * 4))
    joint = np.sqrt((a.grad.detach().numpy() ** 2).sum() + (b.grad.detach().numpy() ** 2).sum())
    assert joint == pytest.approx(1.0, rel=1e-4)
    nn.utils.clip_grad_value_([a, b], 0.1)
    assert np.abs(b.grad.detach().numpy()).max() <= 0.1


def test_parameter_vector_round_trip():
    net = nn.Linear(3, 2)
    vec = nn.utils.parameters_to_vector(net.parameters())
    assert vec.shape == (8,)
    nn.utils.vector_to_parameters(vec * 0 + 1, net.parameters())
    assert net.weight.detach().numpy().sum() == 6 and net.bias.detach().numpy().sum() == 2


@pytest.mark.parametrize("call", [
    lambda L: L.nn.functional.linear(L.ones(2, 3), L.ones(4, 3, dtype=L.float64)),
    lambda L: L.nn.functional.linear(L.ones(2, 3), L.ones(4, 3), L.zeros(4, dtype=L.float64)),
    lambda L: L.ones(2, 3) @ L.ones(3, 4, dtype=L.float64),
    lambda L: L.matmul(L.ones(5, 2, 3, dtype=L.float64), L.ones(3, 4)),
    lambda L: L.mv(L.ones(2, 3), L.ones(3, dtype=L.float64)),
    lambda L: L.nn.functional.conv2d(L.ones(1, 1, 4, 4), L.ones(2, 1, 3, 3), L.zeros(2, dtype=L.float64)),
])
def test_products_refuse_mixed_dtypes_as_pytorch_does(call):
    # widening to float64 (or casting a bias down) would give a result where PyTorch gives an error
    with pytest.raises(RuntimeError, match=r"float32.*float64|float64.*float32"):
        call(lamina)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        call(torch)
