"""LiveView: watch a network learn, in a browser, while fit() runs.

    model.fit(x, y, epochs=30, callbacks=[lamina.viz.LiveView(x_test, y_test)])

prints http://127.0.0.1:PORT/ and opens it where a browser is available. The
page draws the loss and accuracy batch by batch, and every epoch either what
each layer makes of a few fixed test inputs or, for 2-D data, the decision
boundary and each hidden unit's response over the plane.

How it stays out of training's way: the training thread only appends numbers
at each batch and, at the end of an epoch (at most every `min_interval`
seconds), runs one forward pass over the inputs to draw. A background thread
turns those into messages; if it is still busy when the next epoch ends, the
older picture is dropped, never waited for. The standard library's
http.server sends the messages as server-sent events from daemon threads, bound
to 127.0.0.1 only; a page that closes or stalls costs its own thread, nothing
else. The page is one inline HTML file (canvas drawing, no build step, nothing
fetched from the network), so it works offline.
"""

import base64
import collections
import json
import math
import os
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from lamina.training import Callback
from lamina.viz import plots
from lamina.viz.report import describe

PAGE = Path(__file__).with_name("live.html")


def _pack(array, low=None, high=None):
    """An array as {shape, low, high, data}: uint8 levels between low and high, base64 (compact to send)."""
    array = np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(np.min(array)) if low is None else low
    high = float(np.max(array)) if high is None else high
    scaled = np.zeros(array.shape) if high <= low else (array - low) / (high - low)
    levels = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return {"shape": list(array.shape), "low": low, "high": high, "data": base64.b64encode(levels.tobytes()).decode()}


def _finite(value):
    """A number JSON can carry (None for NaN and infinities, which JSON has no words for)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _pack_maps(maps):
    """(C, H, W) feature maps, each scaled to its own range (as the report draws them)."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    return _pack((maps - low) / span, 0.0, 1.0)


def _can_open_a_browser():
    """Whether webbrowser.open would show a window (on a headless Linux it may start a text browser instead)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class LiveView(Callback):
    """A training callback that serves a live page of the run on http://127.0.0.1:PORT/.

    x, y: test data to draw: 2-D points (n, 2) give the boundary and the hidden
    units over the plane; other inputs give `samples` of them (of different
    classes where y is given) through every layer. Without x, only the curves.
    port: 0 picks a free one. open_browser: open the page where a display is
    available. min_interval: seconds between two pictures (the curves are sent
    about five times a second whatever it is).
    """

    main_process_only = True

    def __init__(self, x=None, y=None, port=0, open_browser=True, samples=3, resolution=48, max_units=16,
                 min_interval=0.2, title=None, verbose=True):
        super().__init__()
        self.x = None if x is None else np.asarray(x._host_array() if hasattr(x, "_host_array") else x)
        self.y = None if y is None else np.asarray(y._host_array() if hasattr(y, "_host_array") else y)
        self.port, self.open_browser, self.samples = port, open_browser, samples
        self.resolution, self.max_units, self.min_interval = resolution, max_units, min_interval
        self.title, self.verbose = title, verbose
        self.url = None
        self.frames_drawn = 0  # pictures turned into messages (for tests and the curious)
        self.frames_dropped = 0  # pictures replaced by a newer one before they could be sent
        self._server = None
        self._changed = threading.Condition()
        self._log = []  # (event, data) messages every page receives in order, from the start
        self._frame = None  # the newest picture as a message; only the newest is ever sent
        self._frame_version = 0
        # Appended by training, taken by the drawing thread: a deque's append and popleft need no lock.
        self._pending_points, self._pending_epochs = collections.deque(), collections.deque()
        self._snapshot = None  # the newest forward pass to draw, handed from training to the drawing thread
        self._wake = threading.Event()
        self._step = 0
        self._last_snapshot = -float("inf")
        self._finished = False
        self._closing = False
        self._lock = threading.Lock()  # for the one picture waiting to be drawn

    # --- in the training thread: cheap ------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self._server is None:
            self._start()
        self._finished = False
        self._logged = ("loss", *self._metric_names())  # what each batch sends: its step, then these
        setup = {"title": self.title or describe(self.model), "epochs": self.params.get("epochs"),
                 "steps": self.params.get("steps"), "metrics": list(self._logged[1:]), "view": self._view()}
        if setup["view"] == "plane":
            gx, gy, _ = plots._grid(self.x, self.resolution)
            span = [float(gx.min()), float(gx.max()), float(gy.min()), float(gy.max())]
            shown = np.random.default_rng(0).permutation(len(self.x))[:400]  # enough points to see the shape
            setup.update(extent=span, points=np.round(self.x[shown], 3).tolist(),
                         labels=[] if self.y is None else self.y[shown].astype(int).tolist())
        elif setup["view"] == "layers":
            self._inputs, setup["inputs"] = self._choose_inputs()
        self._publish("setup", setup)
        self._snap(force=True)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._step += 1
        point = [self._step, *(_finite(logs.get(k)) for k in self._logged)]
        self._pending_points.append(point)

    def on_epoch_end(self, epoch, logs=None):
        numbers = {k: _finite(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        self._pending_epochs.append({"epoch": epoch + 1, "step": self._step, "logs": numbers})
        self._snap()  # the last epoch's picture comes from on_train_end, which always draws one

    def on_train_end(self, logs=None):
        self._snap(force=True)
        self._finished = True
        self._wake.set()

    def _metric_names(self):
        """The names of the compiled metrics, as they appear in the logs."""
        trainer = getattr(self.model, "trainer", None)  # compile() keeps the metrics on the model's trainer
        names = getattr(trainer, "metric_names", None) or getattr(self.model, "metric_names", None) or []
        return [m if isinstance(m, str) else getattr(m, "name", str(m)) for m in names]

    def _view(self):
        if self.x is None:
            return "curves"
        return "plane" if self.x.ndim == 2 and self.x.shape[1] == 2 else "layers"

    def _choose_inputs(self):
        """A few fixed inputs, of different classes where the labels say which."""
        if self.y is None:
            chosen = list(range(min(self.samples, len(self.x))))
        else:
            chosen, seen = [], set()
            for i, label in enumerate(self.y[:1000]):
                if int(label) not in seen:
                    chosen.append(i)
                    seen.add(int(label))
                if len(chosen) == self.samples:
                    break
        inputs = self.x[chosen].astype(np.float32)
        labels = [None if self.y is None else int(self.y[i]) for i in chosen]
        return inputs, labels

    def _snap(self, force=False):
        """One forward pass over what the page draws, kept for the drawing thread (at most every min_interval)."""
        now = time.perf_counter()
        view = self._view()
        if view == "curves" or (not force and now - self._last_snapshot < self.min_interval):
            return
        self._last_snapshot = now
        # Here, not in the drawing thread: no_grad and eval mode are switches of the whole process.
        if view == "plane":
            gx, _, points = plots._grid(self.x, self.resolution)
            # In pieces the size of a training batch: one big product would wake BLAS's other threads,
            # which then spin for a while on the cores training needs.
            pieces = [plots._stages(self.model, points[i:i + 256]) for i in range(0, len(points), 256)]
            stages = [(title, np.concatenate([piece[k][1] for piece in pieces]))
                      for k, (title, _) in enumerate(pieces[0])]
            snapshot = ("plane", gx.shape, stages)
        else:
            snapshot = ("layers", None, plots._stages(self.model, self._inputs))
        with self._lock:
            if self._snapshot is not None:
                self.frames_dropped += 1
            self._snapshot = (self._step, snapshot)
        self._wake.set()  # otherwise the drawing thread wakes on its own, five times a second

    # --- in the drawing thread --------------------------------------------------------------------------
    def _draw_loop(self):
        while not self._closing:
            self._wake.wait(0.2)
            self._wake.clear()
            finished = self._finished
            points = [self._pending_points.popleft() for _ in range(len(self._pending_points))]
            epochs = [self._pending_epochs.popleft() for _ in range(len(self._pending_epochs))]
            with self._lock:
                snapshot, self._snapshot = self._snapshot, None
            if points:
                self._publish("batch", points)
            for epoch in epochs:
                self._publish("epoch", epoch)
            if snapshot is not None:
                frame = json.dumps(self._frame_message(*snapshot), allow_nan=False)
                with self._changed:
                    self._frame, self._frame_version = frame, self._frame_version + 1
                    self.frames_drawn += 1
                    self._changed.notify_all()
            if finished and not self._pending_points and self._snapshot is None:
                self._publish("end", {"step": self._step})
                self._finished = False

    def _frame_message(self, step, snapshot):
        view, grid_shape, stages = snapshot
        if view == "plane":
            last = plots._probabilities(stages[-1][1]).reshape(*grid_shape, -1)
            units = []
            for title, out in stages[:-1]:
                if out.ndim != 2:
                    continue
                responses = out[:, :self.max_units].T.reshape(-1, *grid_shape)
                limits = np.maximum(np.abs(responses).max(axis=(1, 2), keepdims=True), 1e-6)
                units.append({"title": f"{title} ({out.shape[1]} units)", "maps": _pack(responses / limits, -1.0, 1.0)})
            return {"step": step, "probs": _pack(last, 0.0, 1.0), "units": units}
        inputs = self._inputs[:, 0] if self._inputs.ndim == 4 and self._inputs.shape[1] == 1 else self._inputs
        if inputs.ndim == 3:
            rows = [{"title": f"input {tuple(inputs.shape[1:])}", "kind": "image",
                     "values": [_pack(i) for i in inputs]}]
        else:
            low, high = float(inputs.min()), float(inputs.max())
            rows = [{"title": f"input ({inputs.shape[1]} features)", "kind": "strip",
                     "values": [_pack(i.ravel(), low, high) for i in inputs]}]
        for title, out in stages[:-1]:
            if out.ndim == 4:
                rows.append({"title": f"{title} {tuple(out.shape[1:])}", "kind": "maps",
                             "values": [_pack_maps(o[:16]) for o in out]})
            elif out.ndim == 3:
                rows.append({"title": title, "kind": "image", "values": [_pack(o) for o in out]})
            else:
                low, high = float(out.min()), float(out.max())
                rows.append({"title": f"{title} ({out.shape[1]} units)", "kind": "strip",
                             "values": [_pack(o, low, high) for o in out]})
        probs = plots._probabilities(stages[-1][1].reshape(len(stages[-1][1]), -1))
        return {"step": step, "rows": rows, "probs": np.round(probs, 4).tolist()}

    # --- the server ---------------------------------------------------------------------------------------
    def _publish(self, event, data):
        message = json.dumps(data, allow_nan=False) if not isinstance(data, str) else data
        with self._changed:
            self._log.append((event, message))
            self._changed.notify_all()

    def _start(self):
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # the terminal belongs to the training's progress
                pass

            def do_GET(self):
                if self.path in ("/", "/index.html"):
                    body = PAGE.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    try:
                        view._stream(self.wfile)
                    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                        pass  # the page was closed: only this thread ends
                elif self.path == "/favicon.ico":
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_error(404)

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as e:
            raise OSError(f"LiveView: cannot serve on 127.0.0.1:{self.port} ({e.strerror}); "
                          "pass port=0 for a free port") from None
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, name="lamina-live-server", daemon=True).start()
        self._drawer = threading.Thread(target=self._draw_loop, name="lamina-live-drawing", daemon=True)
        self._drawer.start()
        if self.verbose:
            print(f"Live view: {self.url}", flush=True)
        if self.open_browser and _can_open_a_browser():
            threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True).start()

    def _stream(self, out):
        """Send one page everything so far, then each new message as it comes (a comment line when idle)."""
        sent, version = 0, 0
        while not self._closing:
            with self._changed:
                if sent == len(self._log) and version == self._frame_version:
                    self._changed.wait(timeout=2.0)
                messages, sent = self._log[sent:], len(self._log)
                frame = self._frame if self._frame_version != version else None
                version = self._frame_version
            if frame is not None:  # after the setup it belongs to, before the end of training
                ends = [i for i, (event, _) in enumerate(messages) if event == "end"]
                messages.insert(ends[0] if ends else len(messages), ("frame", frame))
            chunks = [f"event: {event}\ndata: {data}\n\n" for event, data in messages]
            out.write(("".join(chunks) or ": still here\n\n").encode())
            out.flush()

    def close(self):
        """Stop serving the page (it is also stopped when the process ends)."""
        if self._server is not None:
            self._closing = True
            self._wake.set()
            with self._changed:
                self._changed.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
