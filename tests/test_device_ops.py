"""Every op and layer computes on the device of its inputs (issue 10).

Runs on the CuPy stand-in of tests/cuda_standin.py, whose arrays refuse to be mixed with NumPy's as CuPy's do:
an op that builds a NumPy array (np.zeros, np.arange, a NumPy random draw) next to a "GPU" input fails here
as it would on a GPU. Each op case and each layer runs on the CPU and on the stand-in with the same inputs and
weights; the values and gradients must agree and every result must be a stand-in array.
"""

import copy
import os

import cuda_standin
import numpy as np
import pytest
from op_cases import CASES, make_inputs

import lamina
import lamina.nn as nn
import lamina.nn.functional as F

# LAMINA_DEVICE_TESTS=cuda runs the same sweep on a real GPU through CuPy instead of the stand-in.
REAL_GPU = os.environ.get("LAMINA_DEVICE_TESTS") == "cuda"


@pytest.fixture(autouse=True)
def _standin():
    if REAL_GPU:
        yield
        return
    with cuda_standin.installed():
        yield


def _on_device(array):
    if REAL_GPU:
        return type(array).__module__.startswith("cupy")
    return isinstance(array, cuda_standin.ndarray)


def _as_tuple(x):
    if isinstance(x, (tuple, list)):
        return tuple(t for item in x for t in _as_tuple(item))
    return (x,) if isinstance(x, lamina.Tensor) else ()


class _OnDevice:
    """lamina, except that the constants a case builds with L.tensor land on the stand-in GPU too."""

    def __getattr__(self, name):
        return getattr(lamina, name)

    @staticmethod
    def tensor(data, **kwargs):
        return lamina.tensor(data, **kwargs).to("cuda")


def _weights(out):
    """Fixed weights for the loss (out * w).sum(), so that no gradient is trivially constant."""
    rng = np.random.default_rng(out.numel())
    return rng.standard_normal(out.shape).astype(out.dtype)


def _weighted_sum(outputs, device):
    total = 0
    for out in outputs:
        if out.requires_grad and out.dtype.kind == "f":
            total = total + (out * lamina.tensor(_weights(out)).to(device)).sum()
    return total


def _host(t):
    return t._host_array()


def _close(gpu, cpu, dtype, what):
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_host(gpu), _host(cpu), **tolerance, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_op_on_device(case, dtype):
    arrays = make_inputs(case, dtype)
    cpu = [lamina.tensor(a, requires_grad=True) for a in arrays]
    gpu = [lamina.tensor(a).to("cuda").requires_grad_() for a in arrays]
    cpu_out = _as_tuple(case.fn(lamina, *cpu))
    gpu_out = _as_tuple(case.fn(_OnDevice(), *gpu))
    for c, g in zip(cpu_out, gpu_out, strict=True):
        assert _on_device(g.array), f"{case.name}: result is a {type(g.array).__name__}"
        assert g.dtype == c.dtype
        _close(g, c, dtype, f"{case.name}: forward")
    if not any(o.requires_grad for o in cpu_out):
        return
    _weighted_sum(cpu_out, "cpu").backward()
    _weighted_sum(gpu_out, "cuda").backward()
    for i, (c, g) in enumerate(zip(cpu, gpu)):
        if c.grad is None:
            assert g.grad is None
            continue
        assert _on_device(g.grad.array), f"{case.name}: gradient of input {i} is a {type(g.grad.array).__name__}"
        _close(g.grad, c.grad, dtype, f"{case.name}: gradient of input {i}")


# --- layers ------------------------------------------------------------------------------------------------------
def _real(*shape):
    return lambda rng: rng.standard_normal(shape).astype(np.float32)


def _positive(*shape):
    return lambda rng: rng.uniform(0.1, 0.9, shape).astype(np.float32)


def _labels(high, *shape):
    return lambda rng: rng.integers(0, high, shape)


def _const(value):
    return lambda rng: np.asarray(value)


def _log_probs(*shape):
    return lambda rng: np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1])).astype(np.float32)


def _lstm_lengths(layer, x):
    return layer(x, lengths=[4, 2, 3])


def _mha(layer, q, k, v):
    return layer(q, k, v)


def _causal_mask(size, device):
    return nn.Transformer.generate_square_subsequent_mask(size, device=device)


def _rnn_cell_pair(layer, x, h, c):
    return layer(x, (h, c))


def _unpool(layer, x):
    values, index = F.max_pool2d(x, 2, return_indices=True)
    return layer(values, index)


LAYERS = {
    "Linear": (lambda: nn.Linear(4, 3), [_real(2, 4)]),
    "Linear_no_bias_3d": (lambda: nn.Linear(4, 3, bias=False), [_real(2, 5, 4)]),
    "Conv1d": (lambda: nn.Conv1d(2, 3, 3, padding=1), [_real(2, 2, 6)]),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), [_real(2, 2, 5, 6)]),
    "Conv2d_groups_dilation": (lambda: nn.Conv2d(4, 4, 3, groups=2, dilation=2, padding=2), [_real(1, 4, 5, 5)]),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), [_real(2, 2, 4)]),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
                        [_real(2, 2, 3, 4)]),
    "MaxPool1d": (lambda: nn.MaxPool1d(2), [_real(2, 3, 6)]),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), [_real(2, 3, 5, 6)]),
    "AvgPool1d": (lambda: nn.AvgPool1d(2), [_real(2, 3, 6)]),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), [_real(2, 3, 5, 6)]),
    "AvgPool2d_no_pad_count": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                               [_real(2, 3, 5, 6)]),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(3), [_real(2, 3, 7)]),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), [_real(2, 3, 5, 7)]),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(2), [_real(2, 3, 5, 5)]),
    "MaxUnpool2d": (lambda: nn.MaxUnpool2d(2), [_real(1, 2, 4, 4)], _unpool),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), [_real(4, 3)]),
    "BatchNorm1d_3d": (lambda: nn.BatchNorm1d(3), [_real(4, 3, 5)]),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), [_real(2, 3, 4, 4)]),
    "LayerNorm": (lambda: nn.LayerNorm(4), [_real(2, 3, 4)]),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), [_real(2, 4, 3, 3)]),
    "InstanceNorm1d": (lambda: nn.InstanceNorm1d(3, affine=True), [_real(2, 3, 5)]),
    "InstanceNorm2d": (lambda: nn.InstanceNorm2d(3, track_running_stats=True), [_real(2, 3, 4, 4)]),
    "Embedding": (lambda: nn.Embedding(6, 3), [_labels(6, 2, 4)]),
    "Embedding_padding_idx": (lambda: nn.Embedding(6, 3, padding_idx=0), [_labels(6, 2, 4)]),
    "Dropout": (lambda: nn.Dropout(0.3), [_real(4, 5)]),
    "Dropout2d": (lambda: nn.Dropout2d(0.3), [_real(2, 4, 3, 3)]),
    "RNN": (lambda: nn.RNN(3, 4), [_real(5, 2, 3)]),
    "RNN_relu_2layers": (lambda: nn.RNN(3, 4, num_layers=2, nonlinearity="relu"), [_real(5, 2, 3)]),
    "LSTM": (lambda: nn.LSTM(3, 4, batch_first=True), [_real(2, 5, 3)]),
    "LSTM_bidirectional": (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True), [_real(5, 2, 3)]),
    "LSTM_packed": (lambda: nn.LSTM(3, 4, bidirectional=True), [_real(4, 3, 3)], _lstm_lengths),
    "GRU": (lambda: nn.GRU(3, 4, batch_first=True), [_real(2, 5, 3)]),
    "GRU_bidirectional_packed": (lambda: nn.GRU(3, 4, bidirectional=True), [_real(4, 3, 3)], _lstm_lengths),
    "RNNCell": (lambda: nn.RNNCell(3, 4), [_real(2, 3), _real(2, 4)]),
    "LSTMCell": (lambda: nn.LSTMCell(3, 4), [_real(2, 3), _real(2, 4), _real(2, 4)], _rnn_cell_pair),
    "GRUCell": (lambda: nn.GRUCell(3, 4), [_real(2, 3), _real(2, 4)]),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(4, 2), [_real(3, 2, 4), _real(5, 2, 4), _real(5, 2, 4)],
                           _mha),
    "MultiheadAttention_masked": (
        lambda: nn.MultiheadAttention(4, 2, batch_first=True),
        [_real(2, 3, 4), _real(2, 4, 4), _real(2, 4, 4), _const([[False, False, True, False], [False] * 4])],
        lambda layer, q, k, v, padding: layer(q, k, v, key_padding_mask=padding)),
    "TransformerEncoderLayer": (lambda: nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0),
                                [_real(3, 2, 4)]),
    "TransformerEncoder": (
        lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True), 2),
        [_real(2, 3, 4)],
        lambda layer, x: layer(x, mask=_causal_mask(3, x.device), is_causal=True)),
    "PixelShuffle": (lambda: nn.PixelShuffle(2), [_real(1, 8, 2, 3)]),
    "PixelUnshuffle": (lambda: nn.PixelUnshuffle(2), [_real(1, 2, 4, 6)]),
    "Upsample_nearest": (lambda: nn.Upsample(scale_factor=2), [_real(1, 2, 3, 3)]),
    "Flatten": (lambda: nn.Flatten(), [_real(2, 3, 4)]),
    "Unflatten": (lambda: nn.Unflatten(1, (2, 3)), [_real(2, 6)]),
    "Identity": (lambda: nn.Identity(), [_real(2, 3)]),
    "CosineSimilarity": (lambda: nn.CosineSimilarity(), [_real(3, 4), _real(3, 4)]),
    "PairwiseDistance": (lambda: nn.PairwiseDistance(), [_real(3, 4), _real(3, 4)]),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), [_real(3, 4)]),
}
for _name in ["ConstantPad1d", "ReflectionPad1d", "ReplicationPad1d", "ZeroPad1d"]:
    LAYERS[_name] = ((lambda n: lambda: getattr(nn, n)(2, **({"value": 0.5} if "Constant" in n else {})))(_name),
                     [_real(2, 3, 4)])
for _name in ["ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d"]:
    LAYERS[_name] = ((lambda n: lambda: getattr(nn, n)((1, 2, 2, 1), **({"value": 0.5} if "Constant" in n else {})))(
        _name), [_real(2, 3, 4, 4)])
ACTIVATIONS = ["CELU", "SELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LogSigmoid", "Mish", "PReLU", "ReLU6",
               "Softplus", "Softsign", "Tanhshrink", "ELU", "GELU", "LeakyReLU", "ReLU", "Sigmoid", "SiLU", "Tanh"]
for _name in ACTIVATIONS:
    LAYERS[_name] = ((lambda n: lambda: getattr(nn, n)())(_name), [_real(3, 4)])
LAYERS["GELU_tanh"] = (lambda: nn.GELU(approximate="tanh"), [_real(3, 4)])
LAYERS["Threshold"] = (lambda: nn.Threshold(0.1, 20.0), [_real(3, 4)])
LAYERS["GLU"] = (lambda: nn.GLU(), [_real(3, 4)])
LAYERS["Softmax"] = (lambda: nn.Softmax(dim=1), [_real(3, 4)])
LAYERS["Softmin"] = (lambda: nn.Softmin(dim=1), [_real(3, 4)])
LAYERS["LogSoftmax"] = (lambda: nn.LogSoftmax(dim=1), [_real(3, 4)])
LOSSES = {
    "MSELoss": (lambda: nn.MSELoss(), [_real(3, 4), _real(3, 4)]),
    "L1Loss": (lambda: nn.L1Loss(reduction="sum"), [_real(3, 4), _real(3, 4)]),
    "HuberLoss": (lambda: nn.HuberLoss(delta=0.5), [_real(3, 4), _real(3, 4)]),
    "SmoothL1Loss": (lambda: nn.SmoothL1Loss(reduction="none"), [_real(3, 4), _real(3, 4)]),
    "BCELoss": (lambda: nn.BCELoss(), [_positive(3, 4), _positive(3, 4)]),
    "BCELoss_weight": (lambda: nn.BCELoss(weight=lamina.tensor([1.0, 2.0, 0.5, 1.0])), [_positive(3, 4),
                                                                                       _positive(3, 4)]),
    "BCEWithLogitsLoss": (lambda: nn.BCEWithLogitsLoss(pos_weight=lamina.tensor([1.0, 2.0, 0.5, 1.0])),
                          [_real(3, 4), _positive(3, 4)]),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(), [_real(4, 5), _labels(5, 4)]),
    "CrossEntropyLoss_weight_ignore": (
        lambda: nn.CrossEntropyLoss(weight=lamina.tensor([1.0, 2.0, 0.5, 1.0, 3.0]), ignore_index=1),
        [_real(6, 5), _const([0, 1, 4, 2, 1, 3])]),
    "CrossEntropyLoss_smoothing_2d": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1),
                                      [_real(2, 5, 3, 3), _labels(5, 2, 3, 3)]),
    "CrossEntropyLoss_probabilities": (lambda: nn.CrossEntropyLoss(), [_real(4, 5), _positive(4, 5)]),
    "NLLLoss": (lambda: nn.NLLLoss(reduction="sum"), [_real(4, 5), _labels(5, 4)]),
    "KLDivLoss": (lambda: nn.KLDivLoss(reduction="batchmean"), [_log_probs(3, 4), _positive(3, 4)]),
    "CTCLoss": (lambda: nn.CTCLoss(), [_log_probs(6, 2, 4), _const([[1, 2, 2], [3, 1, 0]]), _const([6, 5]),
                                       _const([3, 2])]),
    "CTCLoss_concatenated_sum": (lambda: nn.CTCLoss(reduction="sum", zero_infinity=True),
                                 [_log_probs(5, 2, 4), _const([1, 2, 3, 3, 3]), _const([5, 4]), _const([2, 3])]),
}
LAYERS.update(LOSSES)


def _layer_inputs(makers, device, seed=0):
    rng = np.random.default_rng(seed)
    tensors = []
    for make in makers:
        array = make(rng)
        t = lamina.tensor(array).to(device)
        if array.dtype.kind == "f":
            t.requires_grad_()
        tensors.append(t)
    return tensors


def _forward(spec, layer, inputs):
    call = spec[2] if len(spec) > 2 else (lambda layer, *xs: layer(*xs))
    return _as_tuple(call(layer, *inputs))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_device(name, train):
    spec = LAYERS[name]
    cpu_layer = spec[0]()
    gpu_layer = copy.deepcopy(cpu_layer).to("cuda")
    cpu_layer.train(train)
    gpu_layer.train(train)
    for p in gpu_layer.parameters():
        assert _on_device(p.array), f"{name}: a parameter stayed on the CPU after .to('cuda')"
    cpu_in, gpu_in = _layer_inputs(spec[1], "cpu"), _layer_inputs(spec[1], "cuda")
    cpu_out, gpu_out = _forward(spec, cpu_layer, cpu_in), _forward(spec, gpu_layer, gpu_in)
    random = train and "Dropout" in name
    for c, g in zip(cpu_out, gpu_out, strict=True):
        assert _on_device(g.array), f"{name}: an output is a {type(g.array).__name__}"
        assert g.dtype == c.dtype
        if not random:
            _close(g, c, np.float32, f"{name}: forward")
    if random:  # the mask was drawn on the device: what it kept is the input scaled
        kept = _host(gpu_out[0]) != 0
        np.testing.assert_allclose(_host(gpu_out[0])[kept], _host(gpu_in[0])[kept] / 0.7, rtol=1e-6)
    _weighted_sum(cpu_out, "cpu").backward()
    _weighted_sum(gpu_out, "cuda").backward()
    for i, (c, g) in enumerate(zip(cpu_in, gpu_in)):
        if c.requires_grad and c.grad is not None:
            assert _on_device(g.grad.array), f"{name}: the gradient of input {i} is not on the device"
            if not random:
                _close(g.grad, c.grad, np.float32, f"{name}: gradient of input {i}")
    for (key, c), (_, g) in zip(cpu_layer.named_parameters(), gpu_layer.named_parameters()):
        if c.grad is None:
            assert g.grad is None, f"{name}: {key}"
            continue
        assert _on_device(g.grad.array), f"{name}: the gradient of {key} is not on the device"
        _close(g.grad, c.grad, np.float32, f"{name}: gradient of {key}")
    for (key, c), (_, g) in zip(cpu_layer.named_buffers(), gpu_layer.named_buffers()):
        assert _on_device(g.array), f"{name}: buffer {key} left the device"
        _close(g, c, np.float32, f"{name}: buffer {key}")


def test_init_draws_on_the_device():
    layer = nn.Linear(3, 4).to("cuda")
    for init in (nn.init.uniform_, nn.init.normal_, nn.init.xavier_uniform_, nn.init.xavier_normal_,
                 nn.init.kaiming_uniform_, nn.init.kaiming_normal_,
                 nn.init.zeros_, nn.init.ones_):
        init(layer.weight)
        assert _on_device(layer.weight.array), init.__name__
        assert layer.weight.dtype == lamina.float32, init.__name__
    nn.init.constant_(layer.bias, 0.5)
    assert _on_device(layer.bias.array)


@pytest.mark.parametrize("name", ["Linear", "Conv2d", "LSTM", "BatchNorm2d", "Embedding",
                                  "CrossEntropyLoss_weight_ignore"])
def test_mixed_devices_one_error(name):
    spec = LAYERS[name]
    layer = spec[0]().to("cuda")
    inputs = _layer_inputs(spec[1], "cpu")
    with pytest.raises(RuntimeError, match=r"(?s)expected all tensors to be on the same device.*(cpu.*cuda|cuda.*cpu)"):
        _forward(spec, layer, inputs)
