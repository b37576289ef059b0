"""safetensors files: round trips, PyTorch's weights in and out, refused pickles and clear errors on bad files."""

import io as io_module
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import cli, io, models, optim

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _outputs(model, x):
    with lamina.no_grad():
        return model.eval()(lamina.tensor(x)).detach().numpy()


def _bn_model(module):
    return module.Sequential(module.Conv2d(1, 4, 3), module.BatchNorm2d(4), module.ReLU(), module.Flatten(),
                             module.Linear(4 * 6 * 6, 8), module.BatchNorm1d(8), module.Tanh(), module.Linear(8, 3))


def test_model_round_trip_keeps_architecture_and_state_dict_names(tmp_path):
    model = _bn_model(nn)
    for bn in (model[1], model[5]):
        bn.running_mean.data[...] = np.arange(bn.num_features)
        bn.num_batches_tracked.data[...] = 7
    path = tmp_path / "m.safetensors"
    lamina.save(model, path, metadata={"note": "hi"})
    assert sorted(safetensors_numpy.load_file(str(path))) == sorted(model.state_dict())  # bare names, as PyTorch's
    loaded = lamina.load(path)
    assert repr(loaded) == repr(model)
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(_outputs(loaded, x), _outputs(model, x))
    assert list(lamina.load_weights(path)) == list(model.state_dict())  # in the model's order
    assert lamina.load_weights(path)["5.num_batches_tracked"].dtype == np.int64
    assert io.read_metadata(path)["metadata"] == {"note": "hi"}


def test_mixed_dtypes_empty_and_non_contiguous_arrays_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "f64": rng.standard_normal((3, 4)), "f32": rng.standard_normal(5).astype(np.float32),
        "f16": rng.standard_normal((2, 2)).astype(np.float16), "i64": np.arange(-3, 3), "i8": np.int8([-128, 127]),
        "u8": np.uint8([0, 255]), "bool": np.array([True, False]), "empty": np.zeros((0, 3), np.float32),
        "scalar": np.array(2.5), "transposed": rng.standard_normal((3, 5)).T, "strided": np.arange(20)[::3],
    }
    path = tmp_path / "w.safetensors"
    lamina.save(state, path)
    loaded = lamina.load(path)
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value)
    with pytest.raises(io.ModelFileError, match="cannot save c to .*complex64 has no safetensors"):
        lamina.save({"c": np.zeros(2, np.complex64)}, tmp_path / "c.safetensors")


def test_checkpoint_in_safetensors_resumes_exactly(tmp_path):
    x = lamina.tensor(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))
    y = lamina.tensor(np.arange(16) % 3)

    def step(model, opt):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        step(model, opt)
    lamina.save(model, tmp_path / "c.safetensors", optimizer=opt, epoch=3)
    assert sorted(lamina.load_weights(tmp_path / "c.safetensors")) == sorted(model.state_dict())
    restored = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    restored_opt = optim.Adam(restored.parameters(), lr=0.01)
    assert lamina.load_checkpoint(tmp_path / "c.safetensors", restored, restored_opt)["epoch"] == 3
    for _ in range(2):
        step(model, opt)
        step(restored, restored_opt)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), restored[0].weight.detach().numpy())


def test_a_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    lamina.save(nn.Linear(4, 4), path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_numpy, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        lamina.save(nn.Linear(4, 4), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _write_raw(path, header, data=b""):
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def test_bad_files_give_one_clear_error_each(tmp_path):
    good = tmp_path / "good.safetensors"
    lamina.save(nn.Sequential(nn.Linear(50, 20), nn.ReLU(), nn.Linear(20, 10)), good)
    data = good.read_bytes()
    cases = {
        "cut": (data[: len(data) // 2], r"cut.safetensors: truncated"),
        "tiny": (data[:5], r"tiny.safetensors: not a safetensors file, or truncated"),
        "huge": ((1 << 60).to_bytes(8, "little") + data[8:], r"huge.safetensors: truncated, or not a safetensors"),
        "garbage": (data[:8] + b"\xff" * (len(data) - 8), r"garbage.safetensors: corrupted.*not JSON"),
        "tail": (data + b"\0" * 8, r"tail.safetensors: corrupted: its tensors fill"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(content)
        with pytest.raises(io.ModelFileError, match=message):
            lamina.load(tmp_path / f"{name}.safetensors")
    f8 = _write_raw(tmp_path / "f8.safetensors", {"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}},
                    b"\0\0")
    with pytest.raises(io.ModelFileError, match="f8.safetensors: tensor w has dtype F8_E4M3, which lamina does not"):
        lamina.load_weights(f8)
    lying = _write_raw(tmp_path / "lying.safetensors",
                       {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 8]}}, b"\0" * 8)
    with pytest.raises(io.ModelFileError, match=r"lying.safetensors: corrupted: tensor w \(F32, shape \(2, 3\)\) "
                                                r"needs 24 bytes, but the file gives it 8"):
        lamina.load_weights(lying)


def test_loading_allocates_no_more_than_the_file_holds(tmp_path):
    claims = _write_raw(tmp_path / "claims.safetensors",  # 4 TB promised in a 100-byte file
                        {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}})
    overlapping = _write_raw(tmp_path / "overlap.safetensors",  # each tensor reading the same bytes
                             {f"w{i}": {"dtype": "U8", "shape": [1000], "data_offsets": [0, 1000]} for i in range(50)},
                             b"\0" * 1000)
    tracemalloc.start()
    for path, message in ((claims, "lies at bytes"), (overlapping, "starts at byte 0 of the data, not at 1,000")):
        with pytest.raises(io.ModelFileError, match=message):
            lamina.load_weights(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000
    npz = tmp_path / "m.npz"
    lamina.save(nn.Linear(3, 3), npz)
    with zipfile.ZipFile(npz) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    forged = io_module.BytesIO()  # the weight's .npy header claims 4 TB; its 36 bytes of data stay
    np.lib.format.write_array_header_1_0(forged, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    entries["model/weight.npy"] = forged.getvalue() + np.zeros(9, np.float32).tobytes()
    with zipfile.ZipFile(npz, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    tracemalloc.start()
    with pytest.raises(io.ModelFileError, match=r"m.npz: corrupted: array model/weight claims shape \(1000000, "):
        lamina.load(npz)
    assert tracemalloc.get_traced_memory()[1] < 1_000_000
    tracemalloc.stop()


def test_mismatched_keys_and_shapes_name_the_file_and_key(tmp_path):
    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file({"0.weight": np.zeros((4, 3), np.float32), "0.bias": np.zeros(4, np.float32)},
                                str(path))
    with pytest.raises(io.ModelFileError, match=r"w.safetensors: 0.weight has shape \(4, 3\) in file, \(5, 3\) in"):
        lamina.load(path, model=nn.Sequential(nn.Linear(3, 5)))
    with pytest.raises(io.ModelFileError, match="w.safetensors: missing key 2.weight, 2.bias"):
        lamina.load(path, model=nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(io.ModelFileError, match="w.safetensors: unexpected key 0.bias"):
        lamina.load(path, model=nn.Sequential(nn.Linear(3, 4, bias=False)))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_pickle_files_are_refused_with_the_conversion_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    for name in ("model.pt", "model.pth", "weights.bin", "disguised.npz"):
        (tmp_path / name).write_bytes(pickle.dumps({"w": _Payload(str(marker))}))
        with pytest.raises(io.ModelFileError, match=r"PyTorch pickle file.*never loads.*save_file\(torch.load"):
            lamina.load(tmp_path / name)
        with pytest.raises(io.ModelFileError, match="safetensors"):
            lamina.load_weights(tmp_path / name)
    assert not marker.exists()


def test_command_line_reads_safetensors_models(tmp_path, capsys):
    model = models.mlp((28, 28), [16], 10)
    lamina.save(model, tmp_path / "m.safetensors")
    assert cli.main(["info", str(tmp_path / "m.safetensors")]) == 0
    assert "parameters" in capsys.readouterr().out
    (tmp_path / "m.pt").write_bytes(b"\x80\x04junk")
    assert cli.main(["info", str(tmp_path / "m.pt")]) == 2
    assert "PyTorch pickle file" in capsys.readouterr().err


# --- PyTorch ---------------------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def _models(module):
    return {
        "mlp": (module.Sequential(module.Flatten(), module.Linear(784, 64), module.ReLU(), module.Linear(64, 10)),
                (1, 28, 28)),
        "cnn": (module.Sequential(module.Conv2d(1, 8, 3), module.ReLU(), module.MaxPool2d(2), module.Conv2d(8, 16, 3),
                                  module.ReLU(), module.MaxPool2d(2), module.Flatten(), module.Linear(16 * 5 * 5, 10)),
                (1, 28, 28)),
        "batchnorm": (_bn_model(module), (1, 8, 8)),
    }


def _trained_torch(torch, kind):
    """A PyTorch model with a few training steps behind it, so that running statistics are not trivial."""
    torch.manual_seed(0)
    model, shape = _models(torch.nn)[kind]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.rand(16, *shape)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), shape


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["mlp", "cnn", "batchnorm"])
def test_pytorch_safetensors_load_into_lamina(tmp_path, kind):
    torch = _torch()
    from safetensors.torch import save_file

    torch_model, shape = _trained_torch(torch, kind)
    path = tmp_path / f"{kind}.safetensors"
    save_file(torch_model.state_dict(), str(path))
    x = np.random.default_rng(1).random((7, *shape), dtype=np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).detach().numpy()
    model = _models(nn)[kind][0]
    model.load_state_dict(lamina.load_weights(path))
    np.testing.assert_allclose(_outputs(model, x), expected, rtol=1e-5, atol=1e-5)
    other = lamina.load(path, model=_models(nn)[kind][0])  # the same, with the file's name in any error
    np.testing.assert_allclose(_outputs(other, x), expected, rtol=1e-5, atol=1e-5)
    if kind == "batchnorm":
        assert lamina.load_state_dict(path)["1.num_batches_tracked"] == 3


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["mlp", "cnn", "batchnorm"])
def test_lamina_safetensors_load_into_pytorch(tmp_path, kind):
    torch = _torch()
    from safetensors.torch import load_file

    lamina.manual_seed(3)
    model, shape = _models(nn)[kind]
    if kind == "batchnorm":  # a few steps in training mode move the running statistics
        model.train()
        for _ in range(3):
            model(lamina.rand(16, *shape))
    path = tmp_path / f"{kind}.safetensors"
    lamina.save(model, path)
    torch_model = _models(torch.nn)[kind][0]
    torch_model.load_state_dict(load_file(str(path)))  # strict: every key and shape matches
    x = np.random.default_rng(2).random((7, *shape), dtype=np.float32)
    with torch.no_grad():
        got = torch_model.eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, _outputs(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_a_real_pytorch_checkpoint_is_refused(tmp_path):
    torch = _torch()
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "weights.pth")
    (tmp_path / "weights.pth").rename(tmp_path / "renamed.npz")  # the zip inside is recognized, not the name
    with pytest.raises(io.ModelFileError, match="PyTorch pickle file"):
        lamina.load(tmp_path / "renamed.npz")


@pytest.mark.torch
def test_bfloat16_weights_from_pytorch_are_widened_to_float32(tmp_path):
    torch = _torch()
    from safetensors.torch import save_file

    weights = torch.randn(3, 4).to(torch.bfloat16)
    save_file({"w": weights}, str(tmp_path / "b.safetensors"))
    loaded = lamina.load_weights(tmp_path / "b.safetensors")["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, weights.float().detach().numpy())
