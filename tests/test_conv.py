"""Convolution, pooling, normalization and resampling layers: gradients of both orders, and behaviour."""

import numpy as np
import pytest
from layer_check import check_layer

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

LAYERS = [
    (lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    (lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2), (2, 4, 6, 7)),
    (lambda: nn.Conv2d(2, 2, 2, padding="same", bias=False), (1, 2, 4, 5)),
    (lambda: nn.Conv1d(3, 2, 3, stride=2, padding=1), (2, 3, 7)),
    (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 3, 3)),
    (lambda: nn.ConvTranspose2d(4, 2, 2, stride=2, groups=2), (1, 4, 3, 2)),
    (lambda: nn.MaxPool2d(2), (2, 3, 4, 4)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 2, 6, 5)),
    (lambda: nn.MaxPool1d(2), (2, 3, 6)),
    (lambda: nn.AvgPool2d(2), (2, 3, 4, 4)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 5, 6)),
    (lambda: nn.AvgPool1d(3, stride=1), (2, 2, 5)),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 4, 5)),
    (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    (lambda: nn.BatchNorm1d(3), (5, 3)),
    (lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
    (lambda: nn.LayerNorm(4), (3, 4)),
    (lambda: nn.LayerNorm((2, 3)), (2, 2, 3)),
    (lambda: nn.GroupNorm(2, 4), (2, 4, 3, 2)),
    (lambda: nn.Dropout2d(0.5), (2, 3, 2, 2)),
    (lambda: nn.Upsample(scale_factor=2), (1, 2, 2, 3)),
]


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: repr(v()) if callable(v) else str(v))
def test_layer(make, shape):
    check_layer(make, shape, train_step="Norm" not in repr(make()))


def test_batch_norm_gradients_in_training_mode():
    layer = nn.BatchNorm2d(2).double()
    x = lamina.randn(3, 2, 2, 2, dtype=lamina.float64, requires_grad=True)
    assert lamina.gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])
    assert lamina.gradgradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


def test_batch_norm_running_statistics():
    layer = nn.BatchNorm1d(2, momentum=0.5)
    x = lamina.tensor([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]])
    y = layer(x)
    np.testing.assert_allclose(y.detach().numpy().mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(layer.running_mean.detach().numpy(), [1.5, 10.0])
    np.testing.assert_allclose(layer.running_var.detach().numpy(), [0.5 + 0.5 * 4, 0.5 + 0.5 * 100])
    assert layer.num_batches_tracked.item() == 1
    layer.eval()
    expected = (x.numpy()[:, 0] - 1.5) / np.sqrt(2.5 + 1e-5)
    np.testing.assert_allclose(layer(x).detach().numpy()[:, 0], expected, rtol=1e-5)


def test_conv_keeps_float32_and_errors_name_shapes():
    conv = nn.Conv2d(3, 4, 3)
    x = lamina.randn(2, 3, 8, 8, requires_grad=True)
    y = conv(x)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == conv.weight.grad.dtype == lamina.float32
    with pytest.raises(ValueError, match=r"conv2d: input of shape \S+Size\(\[2, 5, 8, 8\]\) does not fit weight"):
        conv(lamina.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input"):
        conv(lamina.randn(3, 8, 8))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv(lamina.randn(1, 3, 2, 2))
    # PyTorch refuses mixed dtypes; widening to float64 (or casting the bias down) would be a silent difference
    with pytest.raises(RuntimeError, match=r"conv2d: input \(float32\), weight \(float32\) and bias \(float64\)"):
        nn.functional.conv2d(x, conv.weight, conv.bias.double())
    with pytest.raises(RuntimeError, match=r"conv2d: input \(float64\), weight \(float32\)"):
        conv(x.double())


@pytest.mark.parametrize("channels", [1, 16])  # the bias folded into the product, and added after it
def test_conv_with_bias_equals_conv_then_bias(channels):
    conv = nn.Conv2d(channels, 5, 3, padding=1)
    x = lamina.randn(2, channels, 6, 7)
    want = nn.functional.conv2d(x, conv.weight, padding=1) + conv.bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(conv(x).detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_dropout2d_drops_whole_channels():
    y = nn.Dropout2d(0.5)(lamina.ones(4, 50, 3, 3)).detach().numpy()
    per_channel = y.reshape(4, 50, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


def test_upsample_by_size():
    x = lamina.arange(4.0).reshape(1, 1, 2, 2)
    assert F.interpolate(x, size=(4, 4)).detach().numpy()[0, 0].tolist()[1] == [0.0, 0.0, 1.0, 1.0]


def test_small_cnn_learns():
    lamina.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).astype(np.int64)  # top half brighter?
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 2))
    model.compile(lamina.optim.Adam(model.parameters(), lr=0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
