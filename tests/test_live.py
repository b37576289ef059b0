"""LiveView: the live page of a training run, its event stream, and the page in a real browser."""

import http.client
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import cli, datasets
from lamina.training import Callback

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")
from lamina import viz  # noqa: E402
from lamina.viz import live as live_module  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def no_browser_windows(monkeypatch):
    monkeypatch.setattr(live_module, "_can_open_a_browser", lambda: False)


def _moons_model():
    lamina.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    model.compile(lamina.optim.Adam(model.parameters(), lr=0.02), metrics=["accuracy"])
    return model


def _events(url, until="end", timeout=20):
    """The (event, data) messages of the page's stream, read until the event `until`."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    connection.request("GET", "/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    messages, event = [], None
    while True:
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            messages.append((event, json.loads(line[6:])))
            if event == until:
                break
    connection.close()
    return messages


def test_live_view_streams_the_curves_and_the_plane(capsys):
    X, y = datasets.moons(n=200)
    model = _moons_model()
    view = viz.LiveView(X, y, min_interval=0, resolution=20)
    try:
        history = model.fit(X, y, epochs=3, batch_size=50, validation_data=(X, y), verbose=0, callbacks=[view])
        assert view.url.startswith("http://127.0.0.1:") and view._server.server_address[0] == "127.0.0.1"
        assert f"Live view: {view.url}" in capsys.readouterr().out
        messages = _events(view.url)
        kinds = [event for event, _ in messages]
        setup = messages[0][1]
        assert kinds[0] == "setup" and setup["view"] == "plane" and setup["epochs"] == 3 and setup["steps"] == 4
        points = [p for event, data in messages if event == "batch" for p in data]
        assert [p[0] for p in points] == list(range(1, 13))  # every batch, in order: step, loss, accuracy
        assert np.allclose(points[-1][1:], [history.history["loss"][-1], history.history["accuracy"][-1]])
        assert setup["metrics"] == ["accuracy"]
        epochs = [data for event, data in messages if event == "epoch"]
        assert [e["epoch"] for e in epochs] == [1, 2, 3] and "val_accuracy" in epochs[-1]["logs"]
        frame = next(data for event, data in messages if event == "frame")
        assert frame["probs"]["shape"] == [20, 20, 2]
        assert [u["maps"]["shape"] for u in frame["units"]] == [[8, 20, 20], [8, 20, 20]]
        assert "ReLU" in frame["units"][0]["title"] and "Tanh" in frame["units"][1]["title"]

        page = _get(view.url)
        assert "EventSource" in page and "http://" not in page and "https://" not in page  # nothing fetched
    finally:
        view.close()


def _get(url, path="/"):
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)
    body = connection.getresponse().read().decode()
    connection.close()
    return body


def test_live_view_of_layers_leaves_out_dropout_and_shows_the_inputs():
    (x, y), _ = datasets.digits()
    x, y = x[:256].astype(np.float32) / 255, y[:256]
    lamina.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 10))
    model.compile(metrics=["accuracy"])
    view = viz.LiveView(x, y, samples=3, verbose=False)
    try:
        model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[view])
        messages = _events(view.url)
        setup = messages[0][1]
        assert setup["view"] == "layers" and setup["inputs"] == [int(v) for v in y[:3]] and len(set(y[:3])) == 3
        frame = [data for event, data in messages if event == "frame"][-1]
        assert [row["kind"] for row in frame["rows"]] == ["image", "strip"]
        assert frame["rows"][0]["values"][0]["shape"] == [28, 28]
        assert "Linear + ReLU" in frame["rows"][1]["title"] and "Dropout" not in json.dumps(frame)
        assert np.allclose(np.sum(frame["probs"], axis=1), 1, atol=1e-3)
    finally:
        view.close()


def test_watching_does_not_change_what_is_learned():
    X, y = datasets.moons(n=200)
    runs = []
    for callbacks in ([], [viz.LiveView(X, y, min_interval=0, verbose=False)]):
        model = _moons_model()
        model.fit(X, y, epochs=3, batch_size=50, verbose=0, callbacks=callbacks)
        runs.append([p.detach().numpy().copy() for p in model.parameters()])
        for view in callbacks:
            view.close()
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_a_port_in_use_gets_one_clear_error():
    first = viz.LiveView(verbose=False)
    first._start()
    try:
        taken = first._server.server_address[1]
        with pytest.raises(OSError, match=f"cannot serve on 127.0.0.1:{taken}.*port=0"):
            viz.LiveView(port=taken, verbose=False)._start()
    finally:
        first.close()


def test_lamina_train_watch_prints_the_address(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "xor", "--epochs", "2", "--watch", "--out", str(tmp_path / "run"),
                     "--verbose", "0"]) == 0
    assert "Live view: http://127.0.0.1:" in capsys.readouterr().out


class _Slowly(Callback):
    """Stretch a tiny training over a few seconds so that a page can watch it: wait after the first epoch until
    the page is there (`started`), and at epoch `hold_at` until `released` (so the page closes mid-training)."""

    def __init__(self, hold_at):
        super().__init__()
        self.hold_at, self.started, self.released = hold_at, threading.Event(), threading.Event()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.started.wait(timeout=120)
        if not self.released.is_set():
            time.sleep(0.05)
        if epoch == self.hold_at:
            self.released.wait(timeout=120)


@pytest.mark.slow
def test_the_live_page_in_a_real_browser():
    playwright = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    X, y = datasets.moons(n=400)
    model = _moons_model()
    view = viz.LiveView(X, y, min_interval=0, verbose=False)
    epochs, result, slowly = 60, {}, _Slowly(hold_at=40)
    trainer = threading.Thread(target=lambda: result.update(history=model.fit(
        X, y, epochs=epochs, batch_size=50, validation_data=(X, y), verbose=0, callbacks=[view, slowly])))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        trainer.start()
        while view.url is None:
            time.sleep(0.02)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(view.url)
            page.wait_for_function("Number(document.body.dataset.frames) >= 1 && document.body.dataset.points > 0")
            before = page.evaluate("[document.body.dataset.points, document.getElementById('boundary').toDataURL(), "
                                   "document.getElementById('loss').toDataURL()]")
            slowly.started.set()
            page.wait_for_function(f"Number(document.body.dataset.points) > {before[0]} + 40")
            after = page.evaluate("[document.body.dataset.points, document.getElementById('boundary').toDataURL(), "
                                  "document.getElementById('loss').toDataURL()]")
            assert after[1] != before[1] and after[2] != before[2]  # the boundary and the curve both moved
            page.screenshot(path=str(ARTIFACTS / "live-moons.png"), full_page=True)
            page.close()  # closing the page mid-training
            assert trainer.is_alive()
            slowly.released.set()
            trainer.join(timeout=120)
            assert not trainer.is_alive() and len(result["history"].epoch) == epochs
            page = browser.new_page()  # and the server still answers a new page, with the whole run
            page.goto(view.url)
            page.wait_for_function("document.body.dataset.state === 'finished'")
            assert int(page.evaluate("document.body.dataset.points")) == epochs * 8
            browser.close()
        assert errors == []
    finally:
        slowly.started.set()
        slowly.released.set()
        trainer.join(timeout=120)
        view.close()
