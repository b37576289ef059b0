"""What watching costs: fit() with and without a LiveView, alternating, medians of several runs.

Two workloads: moons (the toy job of `lamina train --dataset moons`: a 2-16-16-2
MLP, 800 points, batch 128, tiny epochs, so the per-epoch pictures weigh the
most) and digits (the default job's 784-256-128-10 MLP, one epoch of the 10,000
bundled digits). Three ways each: no LiveView; a LiveView nobody looks at; a
LiveView with a page open in headless Chromium (when Playwright and chromium are
there; the browser is a separate process, so on a small machine it also
competes for the cores). The target: under 5% slower.

    python bench/live_view.py [--repeats 5] [--threads 1]
"""

import argparse
import functools
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lamina  # noqa: E402
import lamina.nn as nn  # noqa: E402
from bench.common import blas_description, threads  # noqa: E402
from lamina import datasets, viz  # noqa: E402
from lamina.viz import live  # noqa: E402


def workloads():
    (mx, my), (mxt, myt) = datasets.load("moons")
    (dx, dy), (dxt, dyt) = datasets.load("digits")

    def moons_model():
        return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))

    def digits_model():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128),
                             nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))

    return {
        "moons, 100 epochs": (moons_model, (mx, my), (mxt, myt), 100),
        "digits, 1 epoch": (digits_model, (dx, dy), (dxt[:2000], dyt[:2000]), 1),
    }


def fit(make_model, train, test, epochs, callbacks):
    lamina.manual_seed(0)
    model = make_model()
    model.compile("adam", "cross_entropy", ["accuracy"])
    model.fit(*train, epochs=epochs, batch_size=128, validation_data=test, verbose=0, callbacks=callbacks)


def open_page(url):
    """A headless Chromium page on url (or None without Playwright or chromium); returns (page, closer)."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, lambda: None
    if executable is None:
        return None, lambda: None
    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=executable, args=["--headless", "--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)

    def close():
        browser.close()
        p.stop()

    return page, close


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, help="BLAS threads (default: NumPy's default)")
    args = parser.parse_args()
    live._can_open_a_browser = lambda: False  # the bench opens its own headless page
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"{cpu}, {os.cpu_count()} cores; BLAS: {blas_description()}; threads: {args.threads or 'default'}")
    with threads(args.threads):
        for name, (make_model, train, test, epochs) in workloads().items():
            measure(name, functools.partial(fit, make_model, train, test, epochs), test, args.repeats)


def measure(name, job, test, repeats):
    """job(callbacks) trains once; print the medians of each way of watching it."""
    unseen = viz.LiveView(*test, verbose=False)
    watched = viz.LiveView(*test, verbose=False)
    job([unseen])  # warm up both, and start their servers
    job([watched])
    page, close = open_page(watched.url)
    runs = {"plain": lambda: job([]), "LiveView": lambda: job([unseen])}
    if page is not None:
        runs["LiveView + page"] = lambda: job([watched])
    wall, cpu = {run: [] for run in runs}, {run: [] for run in runs}
    for _ in range(repeats):  # alternating, with a pause so that the page has drawn before the next run
        for run, fn in runs.items():
            time.sleep(0.5)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[run].append(time.perf_counter() - start)
            cpu[run].append(time.process_time() - start_cpu)
    print(f"{name}: median wall-clock time, and CPU time of this process (the trainer's own work)")
    for run in runs:
        w, c = statistics.median(wall[run]), statistics.median(cpu[run])
        print(f"  {run:>16}: {w:7.3f} s {w / statistics.median(wall['plain']) - 1:+6.1%}   "
              f"CPU {c:7.3f} s {c / statistics.median(cpu['plain']) - 1:+6.1%}   ({len(wall[run])} runs)")
    frames = page.evaluate("document.body.dataset.frames") if page is not None else "-"
    print(f"  (the page drew {frames} pictures; {watched.frames_dropped} dropped, not waited for)", flush=True)
    close()
    unseen.close()
    watched.close()


if __name__ == "__main__":
    main()
