"""Everything above the ops on a GPU: optimizers, fit/evaluate/predict, saving and loading, the CLI, viz.

Run on a real GPU where CuPy sees one, else under the CuPy stand-in (tests/cuda_standin.py), whose "GPU"
arrays refuse to mix with NumPy's, so any host array made next to a GPU one fails here as on a real GPU.
Each test runs the same thing on the CPU and on "cuda" from the same weights and compares.
"""

import io as bytes_io
import os

import cuda_standin
import numpy as np
import pytest

import lamina
from lamina import cli, nn, optim
from lamina.backend import CPU, device_of, is_array


def _on_gpu(array):
    return is_array(array) and device_of(array).type == "cuda"


def _on_host(array):
    return type(array) is np.ndarray


def _arrays(values):
    return [v for v in values if is_array(v)]


@pytest.fixture
def gpu():
    if lamina.cuda.is_available():  # the real thing
        yield
        return
    with cuda_standin.installed():
        yield


def _data(n=48, image=False):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 1, 8, 8) if image else (n, 4)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return x, y


def _mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _cnn():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))


def _trained(make, device, image=False, move_after_compile=False):
    lamina.manual_seed(0)
    model = make()
    if not move_after_compile:
        model.to(device)
    model.compile("adam", "cross_entropy", metrics=["accuracy", "f1", "top_k_accuracy"])
    if move_after_compile:  # the optimizer was built on the CPU: its state must follow
        model.to(device)
    x, y = _data(image=image)
    history = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, validation_split=0.25)
    return model, history.history, model.evaluate(x, y), model.predict(x)


@pytest.mark.parametrize("make, image", [(_mlp, False), (_cnn, True)])
@pytest.mark.parametrize("move_after_compile", [False, True])
def test_fit_on_gpu_matches_cpu(gpu, make, image, move_after_compile):
    _, history_cpu, results_cpu, predicted_cpu = _trained(make, "cpu", image)
    model, history_gpu, results_gpu, predicted_gpu = _trained(make, "cuda", image, move_after_compile)
    assert history_gpu.keys() == history_cpu.keys()
    for key in history_cpu:
        assert all(isinstance(v, float) for v in history_gpu[key])
        np.testing.assert_allclose(history_gpu[key], history_cpu[key], rtol=1e-5, atol=1e-6)
    for key in results_cpu:
        assert results_gpu[key] == pytest.approx(results_cpu[key], rel=1e-5, abs=1e-6)
    assert _on_host(predicted_gpu)  # predict answers with host arrays wherever the model runs
    np.testing.assert_allclose(predicted_gpu, predicted_cpu, rtol=1e-5, atol=1e-6)
    for p in model.parameters():
        assert _on_gpu(p.array) and _on_gpu(p.grad.array)
        assert all(_on_gpu(value) for value in _arrays(model.optimizer.state[p].values()))


def test_train_and_test_step_move_the_batch(gpu):
    lamina.manual_seed(0)
    model = _mlp().to("cuda")
    model.compile("sgd", "cross_entropy", metrics=["accuracy"])
    x, y = _data(8)
    logs = model.train_step((lamina.tensor(x), lamina.tensor(y)))  # host batch, GPU model
    assert isinstance(logs["loss"], float) and isinstance(logs["accuracy"], float)
    assert isinstance(model.test_step((lamina.tensor(x), lamina.tensor(y)))["loss"], float)


def test_a_users_metric_gets_host_arrays(gpu):
    seen = []

    class Count(lamina.training.metrics.Metric):
        name = "count"

        def reset(self):
            self.n = 0

        def update(self, y_true, y_pred):
            seen.append((type(y_true), type(y_pred)))
            self.n += len(y_true)

        def result(self):
            return float(self.n)

    model = _mlp().to("cuda")
    model.compile("adam", "cross_entropy", metrics=[Count()])
    x, y = _data(16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert seen and all(types == (np.ndarray, np.ndarray) for types in seen)


ALGORITHMS = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    (optim.Adagrad, dict(lr=0.1, weight_decay=0.01)),
    (optim.Adadelta, dict(weight_decay=0.01)),
]


def _steps(cls, kwargs, device, built_before_move):
    lamina.manual_seed(0)
    model = nn.Linear(3, 2)
    x = lamina.randn(5, 3)
    if not built_before_move:
        model.to(device)
    opt = cls(model.parameters(), **kwargs)
    if built_before_move:  # one step on the CPU, then the move: the state made there must follow
        model(x).square().sum().backward()
        opt.step()
        opt.zero_grad()
        model.to(device)
    for _ in range(3):
        model(x.to(device)).square().sum().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


@pytest.mark.parametrize("cls, kwargs", ALGORITHMS, ids=[c.__name__ for c, _ in ALGORITHMS])
@pytest.mark.parametrize("built_before_move", [False, True])
def test_every_optimizer_steps_on_the_gpu(gpu, cls, kwargs, built_before_move):
    model_cpu, opt_cpu = _steps(cls, kwargs, "cpu", built_before_move)
    model_gpu, opt_gpu = _steps(cls, kwargs, "cuda", built_before_move)
    for p, q in zip(model_cpu.parameters(), model_gpu.parameters()):
        assert _on_gpu(q.array)
        np.testing.assert_allclose(q._host_array(), p.array, rtol=1e-5, atol=1e-6)
        arrays = _arrays(opt_gpu.state[q].values())
        assert arrays and all(_on_gpu(v) for v in arrays)
    # a GPU optimizer's state dict holds host arrays, equal to the CPU's; loading puts them on the GPU again
    saved_gpu, saved_cpu = opt_gpu.state_dict(), opt_cpu.state_dict()
    for index, values in saved_cpu["state"].items():
        for key, value in values.items():
            if is_array(value):
                assert _on_host(saved_gpu["state"][index][key])
                np.testing.assert_allclose(saved_gpu["state"][index][key], value, rtol=1e-5, atol=1e-6)
    fresh = cls(model_gpu.parameters(), **kwargs)
    fresh.load_state_dict(saved_cpu)
    assert all(_on_gpu(v) for s in fresh.state.values() for v in _arrays(s.values()))


def test_lbfgs_on_the_gpu(gpu):
    def solve(device):
        w = lamina.tensor([1.5, -0.5], requires_grad=True)
        opt = optim.LBFGS([w], line_search_fn="strong_wolfe")
        w.array = lamina.backend.to_device(w.array, device)  # moved after the optimizer was built
        target = lamina.tensor([3.0, 2.0], device=device)

        def closure():
            opt.zero_grad()
            loss = ((w - target) ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w, opt

    w_cpu, _ = solve("cpu")
    w_gpu, opt = solve("cuda")
    assert _on_gpu(w_gpu.array)
    np.testing.assert_allclose(w_gpu._host_array(), w_cpu.array, rtol=1e-5)
    state = opt.state[w_gpu]
    assert _on_gpu(state["d"]) and all(_on_gpu(v) for v in state["old_dirs"])
    saved = opt.state_dict()["state"][0]
    assert _on_host(saved["d"]) and all(_on_host(v) for v in saved["old_dirs"])


def test_clip_grad_on_gpu_grads(gpu):
    model = _mlp().to("cuda")
    model(lamina.randn(4, 4, device="cuda")).sum().backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    nn.utils.clip_grad_value_(model.parameters(), 0.01)
    assert all(_on_gpu(p.grad.array) and float(abs(p.grad.array).max()) <= 0.01 for p in model.parameters())


def test_save_on_gpu_load_anywhere(gpu, tmp_path):
    model, _, _, _ = _trained(_mlp, "cuda")
    lamina.save(model, tmp_path / "gpu.npz", optimizer=model.optimizer, epoch=1)
    host_copy = lamina.load(tmp_path / "gpu.npz")  # no map_location: the CPU
    assert all(_on_host(p.array) for p in host_copy.parameters())
    lamina.save(host_copy, tmp_path / "cpu.npz")
    state_gpu, state_cpu = lamina.load_weights(tmp_path / "gpu.npz"), lamina.load_weights(tmp_path / "cpu.npz")
    for key, value in model.state_dict().items():
        assert np.array_equal(state_gpu[key], value._host_array()) and np.array_equal(state_cpu[key], state_gpu[key])

    for where in ("cuda", lamina.device("cuda:0"), {"cpu": "cuda"}):
        back = lamina.load(tmp_path / "gpu.npz", map_location=where)
        assert all(_on_gpu(p.array) for p in back.parameters())
    assert all(_on_gpu(p.array) for p in lamina.load(tmp_path / "gpu.npz", device="cuda").parameters())
    moved = lamina.load(tmp_path / "gpu.npz", map_location=lambda t, location: t.to("cuda"))
    assert all(_on_gpu(p.array) for p in moved.parameters())
    with open(tmp_path / "gpu.npz", "rb") as f:
        assert all(_on_gpu(p.array) for p in lamina.load(bytes_io.BytesIO(f.read()), map_location="cuda").parameters())

    # a state dict, a tensor: where asked
    lamina.save(model.state_dict(), tmp_path / "weights.npz")
    assert all(_on_gpu(a) for a in lamina.load(tmp_path / "weights.npz", map_location="cuda").values())
    lamina.save(lamina.ones(3, device="cuda"), tmp_path / "t.npz")
    assert lamina.load(tmp_path / "t.npz").device == CPU
    assert lamina.load(tmp_path / "t.npz", map_location="cuda").is_cuda

    # a given model keeps its device; load_state_dict copies across devices both ways
    cpu_model = lamina.load(tmp_path / "gpu.npz", model=_mlp())
    assert all(_on_host(p.array) for p in cpu_model.parameters())
    gpu_model = _mlp().to("cuda")
    gpu_model.load_state_dict(cpu_model.state_dict())
    assert all(_on_gpu(p.array) for p in gpu_model.parameters())
    cpu_model.load_state_dict(gpu_model.state_dict())


def test_checkpoint_resumes_on_the_device_asked(gpu, tmp_path):
    model, _, _, _ = _trained(_mlp, "cuda")
    lamina.save(model, tmp_path / "ckpt.npz", optimizer=model.optimizer, epoch=1)
    for where, on_device in (("cpu", _on_host), ("cuda", _on_gpu)):
        fresh = _mlp()
        opt = optim.Adam(fresh.parameters())
        restored = lamina.load_checkpoint(tmp_path / "ckpt.npz", fresh, opt, map_location=where)
        assert restored["epoch"] == 1
        assert all(on_device(p.array) for p in fresh.parameters())
        assert all(on_device(v) for s in opt.state.values() for v in _arrays(s.values()))
        fresh(lamina.randn(2, 4, device=where)).sum().backward()
        opt.step()


def test_checkpoint_and_early_stopping_callbacks_on_gpu(gpu, tmp_path):
    lamina.manual_seed(0)
    model = _mlp().to("cuda")
    model.compile("adam", "cross_entropy")
    x, y = _data()
    callbacks = [lamina.training.callbacks.ModelCheckpoint(tmp_path / "c.npz", monitor="loss"),
                 lamina.training.callbacks.EarlyStopping("loss", patience=0, restore_best_weights=True)]
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    assert os.path.exists(tmp_path / "c.npz")
    assert all(_on_gpu(p.array) for p in model.parameters())


def test_onnx_export_of_a_gpu_model(gpu, tmp_path):
    pytest.importorskip("onnx")
    model = _mlp().to("cuda")
    lamina.onnx.export(model, lamina.randn(1, 4, device="cuda"), str(tmp_path / "m.onnx"))
    assert os.path.getsize(tmp_path / "m.onnx") > 0
    assert all(_on_gpu(p.array) for p in model.parameters())  # put back where it was


def test_viz_of_a_gpu_model(gpu, tmp_path):
    pytest.importorskip("matplotlib")
    from lamina.viz import plots

    model = _mlp().to("cuda")
    model(lamina.randn(4, 4, device="cuda")).sum().backward()
    x, y = _data(16)
    scores = plots._predict(model, x)
    assert _on_host(scores) and scores.shape == (16, 3)
    assert all(_on_host(out) for _, _, out in plots.layer_outputs(model, x[:2]))
    plots.weights(model, tmp_path / "w.png")
    plots.decision_boundary(nn.Sequential(nn.Linear(2, 3)).to("cuda"), x[:, :2], y, tmp_path / "b.png", 20)
    assert all(os.path.getsize(tmp_path / name) for name in ("w.png", "b.png"))
    assert "Linear" in str(lamina.viz.report.describe(model, (4,)))


def test_cli_device(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--epochs", "1", "--out", str(out), "--verbose", "0",
                     "--device", "auto"]) == 0
    picked = "on GPU cuda:0" if lamina.cuda.is_available() else "on the CPU"  # auto: a GPU where there is one
    assert picked in capsys.readouterr().out
    assert cli.main(["evaluate", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    if not lamina.cuda.is_available():
        assert cli.main(["train", "--dataset", "moons", "--epochs", "1", "--device", "cuda",
                         "--out", str(tmp_path / "gpu")]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and "--device" in error and "cuda" in error
        assert not (tmp_path / "gpu").exists()
    assert cli.main(["train", "--device", "tpu"]) == 2
    assert "--device" in capsys.readouterr().err


def test_cli_train_on_gpu(gpu, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--epochs", "1", "--out", str(out), "--verbose", "0",
                     "--device", "cuda"]) == 0
    assert "on GPU cuda:0" in capsys.readouterr().out
    assert cli.main(["evaluate", str(out), "--device", "cuda"]) == 0
    model = lamina.load(out / "model.npz")
    assert device_of(next(model.parameters()).array) is CPU


def test_fit_with_a_cuda_graph_needs_a_gpu_model_and_a_capture_refuses_random_draws():
    """What can be checked of CUDA graphs without a GPU (tests/test_cuda.py checks the graphs on one)."""
    model = lamina.models.mlp((4,), [8], 3).compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="cuda_graph=True needs a model with parameters on a GPU"):
        model.fit(np.zeros((8, 4), np.float32), np.zeros(8, np.int64), cuda_graph=True, verbose=0)
    previous, lamina.backend.capturing = lamina.backend.capturing, True
    try:
        with pytest.raises(RuntimeError, match="random draw .* cannot be captured into a CUDA graph"):
            lamina.nn.functional.dropout(lamina.ones(4), 0.5, training=True)
    finally:
        lamina.backend.capturing = previous


def test_probability_targets_are_checked_on_the_host_before_the_batch_moves(gpu):
    model = nn.Sequential(nn.Linear(3, 1)).to("cuda").compile("sgd", "binary_cross_entropy_with_logits")
    x, y = np.zeros((8, 3), np.float32), np.full(8, 2.0, np.float32)
    with pytest.raises(ValueError, match=r"targets as probabilities in \[0, 1\], but they range over \[2, 2\]"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="probabilities"):
        model.evaluate(x, y)
    model.fit(x, np.ones(8, np.float32), verbose=0)  # targets in range train as usual
