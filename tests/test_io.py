"""Saving and loading: round trips, custom modules, clear errors, atomic writes, no pickle."""

import zipfile

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import io, optim


class Residual(nn.Module):
    """A user's own module: saved without any serialization code, because its arguments are plain."""

    def __init__(self, width, depth=2, activation="tanh"):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.activation = activation

    def forward(self, x):
        for block in self.blocks:
            x = x + getattr(lamina, self.activation)(block(x))
        return x


def _same_outputs(a, b, shape):
    x = lamina.randn(*shape)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_sequential_round_trip(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.GELU("tanh"), nn.Dropout(0.3), nn.Linear(8, 3))
    lamina.save(model, tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    _same_outputs(model, loaded, (4, 3, 4))


def test_custom_module_saves_without_boilerplate(tmp_path):
    model = nn.Sequential(Residual(6, depth=3, activation="sigmoid"), nn.Linear(6, 2))
    lamina.save(model, tmp_path / "r.npz")
    loaded = lamina.load(tmp_path / "r.npz")
    assert isinstance(loaded[0], Residual) and len(loaded[0].blocks) == 3
    _same_outputs(model, loaded, (5, 6))


def test_saving_does_not_disturb_the_random_generator(tmp_path):
    lamina.manual_seed(5)
    lamina.save(nn.Linear(3, 3), tmp_path / "a.npz")
    after_save = lamina.randn(3).detach().numpy()
    lamina.manual_seed(5)
    nn.Linear(3, 3)
    np.testing.assert_array_equal(lamina.randn(3).detach().numpy(), after_save)


def test_unencodable_arguments_point_to_state_dict(tmp_path):
    class Holder(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

    with pytest.raises(io.ModelFileError, match="not a plain value.*state_dict"):
        lamina.save(Holder(print), tmp_path / "h.npz")
    assert not (tmp_path / "h.npz").exists()


def test_module_changed_after_construction_is_refused(tmp_path):
    layers = nn.ModuleList([nn.Linear(2, 2)])
    layers.append(nn.Linear(2, 2))
    with pytest.raises(io.ModelFileError, match="changed after it was built"):
        lamina.save(layers, tmp_path / "l.npz")


def test_state_dict_files(tmp_path):
    model = nn.Linear(3, 2)
    lamina.save(model.state_dict(), tmp_path / "w.npz")
    state = lamina.load(tmp_path / "w.npz")
    assert sorted(state) == ["bias", "weight"]
    other = nn.Linear(3, 2)
    lamina.load(tmp_path / "w.npz", model=other)
    np.testing.assert_array_equal(other.weight.detach().numpy(), model.weight.detach().numpy())


def test_load_errors_name_the_problem(tmp_path):
    lamina.save(nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), tmp_path / "small.npz")
    with pytest.raises(io.ModelFileError, match=r"0.weight has shape \(128, 784\) in file, \(256, 784\) in model"):
        lamina.load(tmp_path / "small.npz", model=nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)))
    deeper = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(io.ModelFileError, match="missing key 4.weight, 4.bias"):
        lamina.load(tmp_path / "small.npz", model=deeper)


def test_truncated_and_corrupted_files_are_reported(tmp_path):
    path = tmp_path / "m.npz"
    lamina.save(nn.Linear(50, 50), path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(io.ModelFileError, match="truncated"):
        lamina.load(tmp_path / "cut.npz")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside the weights: the zip CRC catches it
    (tmp_path / "bad.npz").write_bytes(bytes(flipped))
    with pytest.raises(io.ModelFileError, match="corrupted"):
        lamina.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        lamina.load(tmp_path / "missing.npz")


def test_files_hold_no_pickle(tmp_path):
    path = tmp_path / "m.npz"
    lamina.save(nn.Sequential(nn.Linear(2, 2)), path, optimizer=optim.Adam(nn.Linear(2, 2).parameters()))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header
    np.load(path, allow_pickle=False)["__lamina__"]  # reads with pickle disabled


def test_a_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model = nn.Linear(4, 4)
    lamina.save(model, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        lamina.save(nn.Linear(4, 4), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]


def test_checkpoint_resumes_training_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x, y = lamina.tensor(rng.standard_normal((32, 4)).astype(np.float32)), lamina.tensor(rng.integers(0, 3, 32))

    def step(model, opt):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        step(model, opt)
    lamina.save(model, tmp_path / "c.npz", optimizer=opt, epoch=3, history={"loss": [1.0, 0.9, 0.8]})
    restored_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    restored_opt = optim.Adam(restored_model.parameters(), lr=0.01)
    state = lamina.load_checkpoint(tmp_path / "c.npz", restored_model, restored_opt)
    assert state["epoch"] == 3 and state["history"] == {"loss": [1.0, 0.9, 0.8]}
    for _ in range(2):
        step(model, opt)
        step(restored_model, restored_opt)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), restored_model[0].weight.detach().numpy())
    with pytest.raises(io.ModelFileError, match="for Adam, not SGD"):
        lamina.load_checkpoint(tmp_path / "c.npz", restored_model, optim.SGD(restored_model.parameters()))


def test_unknown_class_is_not_imported(tmp_path):
    path = tmp_path / "m.npz"
    lamina.save(nn.Linear(2, 2), path)
    document = io.read_metadata(path)
    document["architecture"]["class"] = "os.system"
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["__lamina__"] = io._json_array(document)
    io._write_atomically(path, arrays)
    with pytest.raises(io.ModelFileError, match="needs class os.system, which is not defined"):
        lamina.load(path)


def test_resume_from_a_checkpoint_continues_bit_for_bit(tmp_path):
    """Shuffling and dropout draw from lamina's generator; the checkpoint keeps its state, so a run stopped
    after epoch 2 and resumed (in a fresh process, seeded again) ends with the very same weights."""
    X, y = lamina.datasets.moons(n=96, seed=1)

    def make():
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
        return model, optim.Adam(model.parameters(), lr=0.01)

    lamina.manual_seed(7)
    model, opt = make()
    model.compile(opt)
    model.fit(X, y, epochs=4, batch_size=16, verbose=0)
    straight = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    lamina.manual_seed(7)
    model, opt = make()
    model.compile(opt)
    ckpt = tmp_path / "ckpt.npz"
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[lamina.training.ModelCheckpoint(ckpt)])
    lamina.manual_seed(7)  # what a new process does before it resumes
    model, opt = make()
    state = lamina.load_checkpoint(ckpt, model, opt)
    model.compile(opt)
    model.fit(X, y, epochs=4, batch_size=16, verbose=0, initial_epoch=state["epoch"])
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.detach().numpy(), straight[key])


def test_pytorch_style_save_and_load_names_keywords_and_open_files(tmp_path):
    """torch.save(model, "model.pth"), torch.load(f, map_location="cpu", weights_only=True), as programs write them."""
    model = lamina.nn.Sequential(lamina.nn.Linear(3, 2), lamina.nn.ReLU())
    lamina.save(model, tmp_path / "model.pth")  # a lamina file whatever its name: judged by content on load
    loaded = lamina.load(tmp_path / "model.pth", map_location="cpu", weights_only=True)
    np.testing.assert_array_equal(loaded[0].weight.detach().numpy(), model[0].weight.detach().numpy())
    with open(tmp_path / "in-a-file.bin", "wb") as f:
        lamina.save(model.state_dict(), f)
    with open(tmp_path / "in-a-file.bin", "rb") as f:
        state = lamina.load(f, weights_only=False)
    assert sorted(state) == ["0.bias", "0.weight"]
    if not lamina.cuda.is_available():  # a GPU asked for where there is none: one clear error (issue 10)
        with pytest.raises(RuntimeError, match="load: device 'cuda'"):
            lamina.load(tmp_path / "model.pth", map_location="cuda")


def test_arrays_and_tensors_save_and_load_as_themselves(tmp_path):
    """torch.save(data, open("traindata.pt", "wb")) of a NumPy array, then torch.load: the array, never a pickle."""
    data = np.random.default_rng(0).standard_normal((3, 4))
    with open(tmp_path / "traindata.pt", "wb") as f:
        lamina.save(data, f)
    loaded = lamina.load(tmp_path / "traindata.pt")
    assert isinstance(loaded, np.ndarray) and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, data)
    lamina.save(lamina.arange(3), tmp_path / "t.pt")
    assert lamina.load(tmp_path / "t.pt").tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="expected a Module, a state dict, a tensor or an array, got list"):
        lamina.save([1, 2], tmp_path / "l.pt")
