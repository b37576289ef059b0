"""report.html: one self-contained page about a training run, every picture embedded, nothing fetched."""

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

import lamina
from lamina import datasets
from lamina.files import write_atomically
from lamina.viz import plots


def _png(draw):
    buffer = io.BytesIO()
    draw(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gif(path):
    return "data:image/gif;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _figure(title, uri, caption=""):
    note = f"<p>{html.escape(caption)}</p>" if caption else ""
    return (f'<figure><figcaption><h2>{html.escape(title)}</h2>{note}</figcaption>'
            f'<img src="{uri}" alt="{html.escape(title)}"></figure>')


def write_report(run_dir, samples=3):
    """Build run_dir/report.html from the run's model, settings, history (and boundary frames)."""
    run = Path(run_dir)
    model = lamina.load(run / "model.npz")
    settings = json.loads((run / "settings.json").read_text())
    history = json.loads((run / "history.json").read_text())
    document = lamina.io.read_metadata(run / "model.npz")
    results = document.get("metadata", {}).get("results", {})
    name = settings["dataset"]
    (x_train, y_train), (x_test, y_test) = datasets.load(name, settings.get("data_dir"), settings.get("seed", 0))
    x_train, x_test = datasets.as_model_input(model, x_train), datasets.as_model_input(model, x_test)
    scores = np.concatenate([plots._predict(model, x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])

    sections = [_figure("Loss and accuracy per epoch", _png(lambda b: plots.plot_history(history, b)),
                        "The loss function scores the predictions; training lowers it epoch by epoch. "
                        "Validation is the held-out test set.")]
    if name in datasets.TOY_SETS:
        frames = run / "boundary_frames.npz"
        if frames.exists():
            recorder = plots.BoundaryRecorder(x_train, y_train)
            with np.load(frames, allow_pickle=False) as saved:
                recorder.frames, recorder.epochs = list(saved["frames"]), list(saved["epochs"])
                recorder.grid = (saved["gx"], saved["gy"])
            gif = run / "boundary.gif"
            plots.boundary_animation(recorder, gif)
            sections.append(_figure("The boundary, epoch by epoch", _gif(gif),
                                    "Learning as a search for a change of coordinates that separates the classes."))
        sections.append(_figure("Decision boundary on the test points",
                                _png(lambda b: plots.decision_boundary(model, x_test, y_test, b))))
        sections.append(_figure("Hidden units", _png(lambda b: plots.hidden_units(model, x_test, b)),
                                "Each small map is one unit's output over the input plane."))
    else:
        for i in range(samples):
            sections.append(_figure(f"Representations of test digit {i + 1} (label {y_test[i]})",
                                    _png(lambda b, i=i: plots.representations(model, x_test[i], b)),
                                    "Each layer transforms the digit into a new representation; the last one "
                                    "says which digit it is."))
        sections.append(_figure("Most confident mistakes",
                                _png(lambda b: plots.misclassified(model, x_test, y_test, b))))
    sections.append(_figure("Confusion matrix on the test set",
                            _png(lambda b: plots.confusion_matrix(y_test, scores, b))))
    sections.append(_figure("Weights", _png(lambda b: plots.weights(model, b))))

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in {**settings, **results}.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lamina run {html.escape(run.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }} th, td {{ text-align: left; padding: 2px 12px; }}
th {{ color: #555; font-weight: normal; }} figure {{ margin: 0 0 2.5em 0; }}
h2 {{ font-size: 1.1em; margin-bottom: 0.2em; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption p {{ margin-top: 0; color: #555; }}
</style></head><body>
<h1>lamina run {html.escape(run.name)}</h1>
<table>{rows}</table>
{''.join(sections)}
</body></html>
"""
    path = run / "report.html"
    write_atomically(path, lambda f: f.write(page.encode()))
    return path


def save_boundary_frames(recorder, run_dir):
    gx, gy = recorder.grid
    np.savez(Path(run_dir) / "boundary_frames.npz", frames=np.stack(recorder.frames),
             epochs=np.asarray(recorder.epochs), gx=gx, gy=gy)
