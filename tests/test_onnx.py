"""ONNX export, checked by the real consumer: ONNX Runtime runs the exported graph and must agree with lamina."""

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import cli, io, models

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
lamina_onnx = pytest.importorskip("lamina.onnx")

BATCH = {"input": {0: "batch"}, "output": {0: "batch"}}


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _lamina_outputs(model, *inputs):
    with lamina.no_grad():
        out = model.eval()(*[lamina.tensor(x) for x in inputs])
    return [o.detach().numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _assert_same(model, session, feeds):
    expected = _lamina_outputs(model, *feeds.values())
    got = session.run(None, feeds)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert e.shape == g.shape and e.dtype == g.dtype
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def _images(batch, shape, seed=0):
    return np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_mlp_and_cnn_match_onnx_runtime_at_batch_1_and_37(tmp_path, kind):
    model = models.mlp((28, 28), [256, 128], 10, 0.2) if kind == "mlp" else models.cnn(1, 10, 0.25)
    shape = (28, 28) if kind == "mlp" else (1, 28, 28)
    path = tmp_path / f"{kind}.onnx"
    proto = lamina_onnx.export(model, _images(2, shape), path, dynamic_axes=BATCH)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    for name, value in model.state_dict().items():  # the weights, under their state-dict names
        np.testing.assert_array_equal(weights[name], value.detach().numpy())
    assert model.training  # export ran the model in eval mode and put it back
    session = _session(path)
    for batch in (1, 37):
        _assert_same(model, session, {"input": _images(batch, shape, seed=batch)})


class EveryLayer(nn.Module):
    """Every layer of lamina.nn with an ONNX equivalent, on an image and a token sequence, with two outputs."""

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=2, bias=False), nn.GroupNorm(2, 8), nn.ELU(),
            nn.Dropout2d(0.3), nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), nn.SiLU(), nn.Upsample(scale_factor=2),
            nn.AdaptiveAvgPool2d((5, 3)), nn.MaxPool2d(2, padding=1), nn.AvgPool2d(2, padding=1), nn.Flatten(),
            nn.Linear(4 * 2 * 2, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Dropout(0.5),
        )
        self.embed = nn.Embedding(20, 6, padding_idx=0)
        self.norm = nn.LayerNorm(6)
        self.tokens = nn.Sequential(
            nn.Conv1d(6, 8, 3, padding=1), nn.MaxPool1d(2), nn.Tanh(), nn.AvgPool1d(2),
            nn.Flatten(), nn.Unflatten(1, (2, 8)), nn.Identity(), nn.Flatten(), nn.Linear(16, 16), nn.GELU("tanh"),
            nn.ReLU(), nn.Sigmoid(),
        )
        self.head = nn.Linear(32, 5)
        self.softmax, self.log_softmax = nn.Softmax(dim=1), nn.LogSoftmax(dim=1)

    def forward(self, image, tokens):
        a = self.image(image)
        b = self.tokens(self.norm(self.embed(tokens)).permute(0, 2, 1))  # (N, L, C) -> (N, C, L)
        scores = self.head(lamina.cat([a, b], dim=1))
        return self.softmax(scores), self.log_softmax(scores).clamp(min=-30.0) * 2 + scores.abs().sqrt()


def _every_layer():
    model = EveryLayer()
    for module in model.modules():  # running statistics that are not just zeros and ones
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            rng = np.random.default_rng(module.num_features)
            module.running_mean.data[...] = rng.normal(size=module.num_features)
            module.running_var.data[...] = rng.uniform(0.5, 2, size=module.num_features)
            module.weight.data[...] = rng.normal(size=module.num_features)
    return model


def _tokens(batch, seed=0):
    tokens = np.random.default_rng(seed).integers(0, 20, (batch, 8))
    tokens[:, -1] = 0  # the padding row
    return tokens


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_every_exportable_layer_matches_onnx_runtime(tmp_path, opset):
    model = _every_layer()
    path = tmp_path / "every.onnx"
    lamina_onnx.export(model, (_images(2, (3, 21, 19)), _tokens(2)), path, input_names=["image", "tokens"],
                       output_names=["probabilities", "mixed"], opset_version=opset,
                       dynamic_axes={"image": {0: "batch"}, "tokens": {0: "batch"}})
    session = _session(path)
    assert [o.name for o in session.get_outputs()] == ["probabilities", "mixed"]
    assert session.get_outputs()[0].shape == ["batch", 5]
    for batch in (1, 37):
        _assert_same(model, session, {"image": _images(batch, (3, 21, 19), batch), "tokens": _tokens(batch, batch)})


class TinyTransformer(nn.Module):
    """The fused ops of a Transformer (Embedding, Attention packed and not, LinearReLU) on a batch of tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
        self.cross = nn.MultiheadAttention(8, 2, batch_first=True)
        self.mask = nn.Transformer.generate_square_subsequent_mask(8)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens), mask=self.mask, is_causal=True)
        memory = h[:, :5]
        return self.cross(h, memory, memory, need_weights=False)[0]


@pytest.mark.parametrize("opset", [13, 18])
def test_fused_transformer_ops_match_onnx_runtime(tmp_path, opset):
    lamina.manual_seed(0)
    model = TinyTransformer()
    path = tmp_path / "transformer.onnx"
    lamina_onnx.export(model, _tokens(2), path, input_names=["tokens"], opset_version=opset,
                       dynamic_axes={"tokens": {0: "batch"}, "output": {0: "batch"}})
    session = _session(path)
    for batch in (1, 5):
        _assert_same(model, session, {"tokens": _tokens(batch, batch)})


def test_an_op_without_a_mapping_is_named_with_its_layer():
    class Cube(lamina.Function):
        def forward(self, a):
            return a**3

        def backward(self, grad_output):
            return grad_output * 3 * self.inputs[0] ** 2

    class Odd(nn.Module):
        def forward(self, x):
            return Cube()(x)

    model = nn.Sequential(nn.Linear(3, 3), Odd())
    with pytest.raises(lamina_onnx.ExportError, match=r"lamina op 'cube' \(.*Cube\) in layer '1' has no ONNX mapping"):
        lamina_onnx.export(model, _images(2, (3,)))

    class WithLoss(nn.Module):
        def forward(self, x):
            return nn.functional.cross_entropy(x, lamina.tensor([0, 1]))

    with pytest.raises(lamina_onnx.ExportError, match="'crossentropy'"):
        lamina_onnx.export(WithLoss(), _images(2, (3,)))


class _ValueDependent(nn.Module):
    def forward(self, x):
        return x * float(x.detach().numpy().max())  # a number read off the input: baked into the graph


class _BatchDependent(nn.Module):
    def forward(self, x):
        return x + lamina.zeros(x.shape[0], 1)  # a constant with the example's batch size


class _Masked(nn.Module):
    def forward(self, x):
        return x[x > 0.5]  # as many elements as the input has above 0.5


def test_a_graph_that_depends_on_the_example_is_refused(tmp_path):
    with pytest.raises(lamina_onnx.ExportError, match="depends on the example input"):
        lamina_onnx.export(_ValueDependent(), _images(4, (3,)), tmp_path / "v.onnx")
    assert not (tmp_path / "v.onnx").exists()
    with pytest.raises(lamina_onnx.ExportError, match="depends on the example input"):
        lamina_onnx.export(_BatchDependent(), _images(4, (3,)), dynamic_axes=BATCH)
    lamina_onnx.export(_BatchDependent(), _images(4, (3,)))  # with a fixed batch size it is right
    with pytest.raises(lamina_onnx.ExportError, match="boolean mask"):
        lamina_onnx.export(_Masked(), _images(4, (3,)))


def test_reshapes_that_fold_the_batch_axis_stay_dynamic(tmp_path):
    class Fold(nn.Module):
        def forward(self, x):
            n = x.shape[0]
            return x.reshape(n * 2, -1).sum(1).reshape(n, 2).argmax(1, keepdim=True) + x.reshape(-1).argmin()

    model = Fold()
    lamina_onnx.export(model, _images(3, (6,)), tmp_path / "f.onnx", dynamic_axes=BATCH)
    session = _session(tmp_path / "f.onnx")
    for batch in (1, 37):
        _assert_same(model, session, {"input": _images(batch, (6,), batch)})


def test_lamina_export_on_the_command_line(tmp_path, capsys):
    mlp = models.mlp((28, 28), [32], 10)
    lamina.save(mlp, tmp_path / "mlp.npz", metadata={"settings": {"dataset": "digits", "model": "mlp"}})
    assert cli.main(["export", str(tmp_path / "mlp.npz"), str(tmp_path / "mlp.onnx")]) == 0
    assert "input ('batch', 28, 28) -> output ('batch', 10)" in capsys.readouterr().out
    _assert_same(mlp, _session(tmp_path / "mlp.onnx"), {"input": _images(5, (28, 28))})

    cnn = models.cnn(1, 10)
    lamina.save(cnn, tmp_path / "cnn.safetensors")  # no training settings: the shape must be given
    assert cli.main(["export", str(tmp_path / "cnn.safetensors"), str(tmp_path / "cnn.onnx")]) == 2
    assert "pass --input-shape" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "cnn.safetensors"), str(tmp_path / "cnn.onnx"), "--input-shape",
                     "1,28,28", "--opset", "18"]) == 0
    _assert_same(cnn, _session(tmp_path / "cnn.onnx"), {"input": _images(3, (1, 28, 28))})
    assert cli.main(["export", str(tmp_path / "cnn.safetensors"), str(tmp_path / "x.onnx"), "--input-shape",
                     "1,20,20"]) == 2
    assert "does not take inputs of shape (1, 20, 20)" in capsys.readouterr().err
    lamina.save(nn.Linear(3, 2), tmp_path / "linear.npz")
    assert cli.main(["export", str(tmp_path / "linear.npz"), str(tmp_path / "linear.onnx")]) == 0  # from Linear


def test_truncated_or_corrupted_onnx_files_are_reported(tmp_path):
    path = tmp_path / "m.onnx"
    lamina_onnx.export(models.mlp((4,), [8], 3), _images(2, (4,)), path)
    assert lamina_onnx.load(path).graph.node
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.onnx").write_bytes(b"\x12\xff\xff\xff\xff\x0f" + data[6:])
    (tmp_path / "empty.onnx").write_bytes(b"")
    for name in ("cut", "noise", "empty"):
        with pytest.raises(io.ModelFileError, match=rf"{name}.onnx: not (an|a valid) ONNX model, or truncated"):
            lamina_onnx.load(tmp_path / f"{name}.onnx")
    with pytest.raises(FileNotFoundError):
        lamina_onnx.load(tmp_path / "missing.onnx")


def test_export_to_a_file_object_and_a_fixed_shape():
    import io as io_module

    buffer = io_module.BytesIO()
    proto = lamina_onnx.export(nn.Sequential(nn.Linear(4, 2), nn.Softmax(dim=1)), _images(3, (4,)), buffer)
    assert buffer.getvalue() == proto.SerializeToString()
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3, 4]


def test_integer_inputs_comparisons_and_casts_are_traced(tmp_path):
    class Counts(nn.Module):
        def forward(self, t):
            halves = t * 0.5  # int64 times a float: a cast to float32, then the product
            return (halves + (t > 2).to(lamina.float32) - (t == 0).to(lamina.float32)).sum(1, keepdim=True)

    tokens = np.random.default_rng(0).integers(0, 6, (3, 7))
    lamina_onnx.export(Counts(), tokens, tmp_path / "c.onnx", dynamic_axes=BATCH)
    session = _session(tmp_path / "c.onnx")
    for batch in (1, 37):
        _assert_same(Counts(), session, {"input": np.random.default_rng(batch).integers(0, 6, (batch, 7))})
