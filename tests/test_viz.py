"""Pictures, the HTML report in a real browser, and TensorBoard event files."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import cli, datasets

pytest.importorskip("matplotlib")
PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from lamina import viz  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _check_picture(path, size=None):
    with Image.open(path) as img:
        if size:
            assert img.size == size
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.var() > 0, f"{path} is blank"
    return pixels.shape


@pytest.fixture(scope="module")
def mlp_and_data():
    lamina.manual_seed(0)
    (x, y), (xt, yt) = datasets.load("digits")
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    model.compile(metrics=["accuracy"])
    history = model.fit(x[:2000], y[:2000], epochs=2, batch_size=64, validation_data=(xt[:500], yt[:500]), verbose=0)
    return model, history, xt[:500], yt[:500]


@pytest.fixture(scope="module")
def toy():
    lamina.manual_seed(0)
    X, y = datasets.moons(n=200)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    model.compile(lamina.optim.Adam(model.parameters(), lr=0.05))
    recorder = viz.BoundaryRecorder(X, y, resolution=40)
    model.fit(X, y, epochs=5, verbose=0, callbacks=[recorder])
    return model, X, y, recorder


def test_representations_of_an_mlp_and_a_cnn(tmp_path, mlp_and_data):
    model, _, x, _ = mlp_and_data
    _check_picture(viz.representations(model, x[0], tmp_path / "mlp.png"))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    height, width = _check_picture(viz.representations(cnn, x[0][None], tmp_path / "cnn.png"))
    assert height > width  # a column of rows: input, conv + ReLU, pool (+ flatten), class probabilities
    three, titles = x[:3], ["right and sure", "right but unsure", "wrong"]
    height3, width3 = _check_picture(viz.representations(model, three, tmp_path / "mlp3.png", titles=titles))
    assert width3 > 2.5 * width and height3 < 1.5 * width3  # three columns, and compact
    with pytest.raises(ValueError, match="3 inputs but 2 titles"):
        viz.representations(model, three, tmp_path / "x.png", titles=titles[:2])
    svg = viz.representations(model, x[1], tmp_path / "mlp.svg")
    assert Path(svg).read_text().lstrip().startswith("<?xml")


def test_layer_outputs_follow_the_data_flow(mlp_and_data):
    model, _, x, _ = mlp_and_data
    outputs = viz.layer_outputs(model, x[:3])
    assert [name for name, _, _ in outputs] == ["0", "1", "2", "3"]
    assert [out.shape for _, _, out in outputs] == [(3, 784), (3, 32), (3, 32), (3, 10)]


def test_two_d_pictures_and_animation(tmp_path, toy):
    model, X, y, recorder = toy
    assert _check_picture(viz.decision_boundary(model, X, y, tmp_path / "b.png")) == (500, 500)
    _check_picture(viz.hidden_units(model, X, tmp_path / "h.png"))
    assert len(recorder.frames) == 6 and recorder.epochs == [0, 1, 2, 3, 4, 5]
    gif = viz.boundary_animation(recorder, tmp_path / "b.gif")
    with Image.open(gif) as img:
        assert img.format == "GIF" and img.n_frames == 6
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        viz.decision_boundary(model, np.zeros((3, 3)), np.zeros(3), tmp_path / "x.png")


def test_training_pictures(tmp_path, mlp_and_data):
    model, history, x, y = mlp_and_data
    assert _check_picture(viz.plot_history(history, tmp_path / "h.png"))[1] == 840  # two panels: loss and accuracy
    _check_picture(viz.confusion_matrix(y, model.predict(x), tmp_path / "c.png"))
    _check_picture(viz.misclassified(model, x, y, tmp_path / "m.png"))
    model(lamina.tensor(x[:8])).sum().backward()  # gradients to draw as well
    _check_picture(viz.weights(model, tmp_path / "w.png"))


def test_tensorboard_event_files(tmp_path, mlp_and_data):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    model, _, x, y = mlp_and_data
    board = viz.TensorBoard(tmp_path / "logs", sample=x[0])
    model.fit(x, y, epochs=2, batch_size=100, validation_data=(x, y), verbose=0, callbacks=[board])
    events = event_accumulator.EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/training", "loss/validation", "accuracy/training", "learning_rate"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/training")] == [1, 2]
    assert "weights/1.weight" in tags["histograms"] and "gradients/1.weight" in tags["histograms"]
    image = events.Images("representations")[-1]
    assert image.width == 410 and image.height > 0  # one column of representations


def _browser():
    playwright = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return playwright, executable


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "xor"])
def test_report_opens_in_a_real_browser(tmp_path, dataset):
    playwright, executable = _browser()
    run = tmp_path / "run"
    assert cli.main(["train", "--dataset", dataset, "--epochs", "3", "--out", str(run), "--verbose", "0"]) == 0
    report = run / "report.html"
    assert report.exists() and "http" not in report.read_text().split("<body>")[1].split("data:image")[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        page.screenshot(path=str(ARTIFACTS / f"report-{dataset}.png"), full_page=True)
        browser.close()
    assert len(widths) >= 4 and all(w > 0 for w in widths)
    assert errors == []
    assert cli.main(["report", str(run)]) == 0  # rebuilding works too


def test_show_writes_the_representations_of_an_image(tmp_path, capsys, monkeypatch):
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--verbose", "0"]) == 0
    (_, _), (x_test, _) = datasets.digits()
    Image.fromarray(255 - x_test[3]).save(tmp_path / "digit.png")
    out = tmp_path / "rep.png"
    assert cli.main(["show", str(tmp_path / "run" / "model.npz"), "--image", str(tmp_path / "digit.png"),
                     "--out", str(out)]) == 0
    _check_picture(out)
    monkeypatch.chdir(tmp_path / "run" / "..")
    assert cli.main(["show", str(tmp_path / "run"), "--image", str(tmp_path / "digit.png")]) == 0  # a run folder
    _check_picture(tmp_path / "run" / "digit-representations.png")  # written next to the run's model
    assert not (tmp_path / "digit-representations.png").exists()


def test_training_without_the_viz_extra_says_how_to_get_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_viz", lambda: None)
    assert cli.main(["train", "--dataset", "xor", "--epochs", "2", "--out", str(tmp_path), "--verbose", "0"]) == 0
    assert "pip install 'lamina[viz]'" in capsys.readouterr().out
    assert (tmp_path / "model.npz").exists() and not (tmp_path / "report.html").exists()
    assert cli.main(["report", str(tmp_path)]) == 2
