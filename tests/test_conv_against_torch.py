"""Convolution, pooling and normalization against PyTorch over sweeps of their arguments."""

import itertools

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")]
TF = torch.nn.functional


def _compare(ours_fn, torch_fn, *arrays, rtol=1e-8, atol=1e-10):
    ours = [lamina.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = ours_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    cotangent = np.random.default_rng(9).standard_normal(out.shape)
    (out * lamina.tensor(cotangent)).sum().backward()
    (tout * torch.tensor(cotangent)).sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.detach().numpy(), t.grad.detach().numpy(), rtol=rtol, atol=atol)


rng = np.random.default_rng(0)
CONV2D = [dict(stride=s, padding=p, dilation=d, groups=g)
          for s, p, d, g in itertools.product([1, 2, (2, 1)], [0, 1, (2, 1), "same", "valid"], [1, 2], [1, 2])
          if not (p == "same" and s != 1)]


@pytest.mark.parametrize("kwargs", CONV2D, ids=str)
def test_conv2d(kwargs):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 4 // kwargs["groups"], 3, 2))
    b = rng.standard_normal(6)
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kwargs), lambda x, w, b: TF.conv2d(x, w, b, **kwargs), x, w, b)


@pytest.mark.parametrize("kwargs", [dict(stride=s, padding=p, dilation=d, groups=g)
                                    for s, p, d, g in itertools.product([1, 3], [0, 2], [1, 2], [1, 3])], ids=str)
def test_conv1d(kwargs):
    x, w = rng.standard_normal((2, 3, 11)), rng.standard_normal((6, 3 // kwargs["groups"], 3))
    _compare(lambda x, w: F.conv1d(x, w, **kwargs), lambda x, w: TF.conv1d(x, w, **kwargs), x, w)


@pytest.mark.parametrize("kwargs", [dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
                                    for s, p, o, d, g in itertools.product([1, 2, 3], [0, 1], [0, 1], [1, 2], [1, 2])
                                    if o < s or o < d], ids=str)
def test_conv_transpose2d(kwargs):
    x = rng.standard_normal((2, 4, 4, 5))
    w = rng.standard_normal((4, 6 // kwargs["groups"], 3, 3))
    b = rng.standard_normal(6)
    _compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs),
             lambda x, w, b: TF.conv_transpose2d(x, w, b, **kwargs), x, w, b)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=c)
                                    for k, s, p, d, c in itertools.product([2, 3], [1, 2], [0, 1], [1, 2],
                                                                           [False, True])], ids=str)
def test_max_pool2d(kwargs):
    x = rng.standard_normal((2, 3, 9, 8))
    _compare(lambda x: F.max_pool2d(x, **kwargs), lambda x: TF.max_pool2d(x, **kwargs), x)


def test_max_pool_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 4, 4))
    _compare(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), x)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=k, stride=s, padding=p, ceil_mode=c, count_include_pad=i)
                                    for k, s, p, c, i in itertools.product([2, 3], [1, 2], [0, 1], [False, True],
                                                                           [True, False])], ids=str)
def test_avg_pool2d(kwargs):
    x = rng.standard_normal((2, 3, 9, 8))
    _compare(lambda x: F.avg_pool2d(x, **kwargs), lambda x: TF.avg_pool2d(x, **kwargs), x)


def test_pool1d():
    x = rng.standard_normal((2, 3, 10))
    _compare(lambda x: F.max_pool1d(x, 3, 2, 1), lambda x: TF.max_pool1d(x, 3, 2, 1), x)
    _compare(lambda x: F.avg_pool1d(x, 3, 2, 1), lambda x: TF.avg_pool1d(x, 3, 2, 1), x)


@pytest.mark.parametrize("size", [1, (2, 3), (3, 3), (7, 5)])
def test_adaptive_avg_pool2d(size):
    x = rng.standard_normal((2, 3, 7, 10))
    _compare(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), x)


@pytest.mark.parametrize("scale", [2, (1, 3)])
def test_upsample_nearest(scale):
    x = rng.standard_normal((2, 3, 4, 5))
    _compare(lambda x: F.interpolate(x, scale_factor=scale), lambda x: TF.interpolate(x, scale_factor=scale), x)


@pytest.mark.parametrize("ours, theirs, shape", [
    (lambda: nn.BatchNorm2d(3), lambda: torch.nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda: nn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (6, 3)),
    (lambda: nn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (6, 3, 4)),
    (lambda: nn.LayerNorm((3, 4)), lambda: torch.nn.LayerNorm((3, 4)), (2, 5, 3, 4)),
    (lambda: nn.GroupNorm(3, 6), lambda: torch.nn.GroupNorm(3, 6), (2, 6, 3, 3)),
])
def test_normalization_matches_torch(ours, theirs, shape):
    layer, tlayer = ours().double(), theirs().double()
    with torch.no_grad():
        for p in tlayer.parameters():
            p.copy_(torch.tensor(rng.standard_normal(p.shape)))
    layer.load_state_dict({k: v.detach().numpy() for k, v in tlayer.state_dict().items()})
    for training in (True, True, False):  # two training steps move the running statistics, then eval uses them
        layer.train(training)
        tlayer.train(training)
        x = rng.standard_normal(shape)
        _compare(lambda x: layer(x), lambda x: tlayer(x), x, rtol=1e-7, atol=1e-9)
    for key, value in tlayer.state_dict().items():
        np.testing.assert_allclose(layer.state_dict()[key].detach().numpy(), value.detach().numpy(), rtol=1e-7)


def test_cnn_state_dict_interchanges_with_torch():
    def build(m):
        return m.Sequential(m.Conv2d(1, 8, 3), m.BatchNorm2d(8), m.ReLU(), m.MaxPool2d(2), m.Conv2d(8, 4, 3, padding=1),
                            m.ReLU(), m.AdaptiveAvgPool2d(2), m.Flatten(), m.Linear(16, 10))

    ours, theirs = build(nn).double().eval(), build(torch.nn).double().eval()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((3, 1, 12, 12))
    np.testing.assert_allclose(ours(lamina.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach(), rtol=1e-8)


def test_max_pool_return_indices():
    x = rng.standard_normal((2, 3, 7, 6))
    _, ours = F.max_pool2d(lamina.tensor(x), 3, 2, 1, return_indices=True)
    _, theirs = TF.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
