"""report.html: one self-contained page about a training run, every picture embedded, nothing fetched."""

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

import lamina
from lamina import datasets, tasks
from lamina.files import write_atomically
from lamina.viz import plots


def _png(draw):
    buffer = io.BytesIO()
    draw(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gif(path):
    return "data:image/gif;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _figure(title, uri, caption="", wide=False):
    note = f"<p>{html.escape(caption)}</p>" if caption else ""
    return (f'<figure class="{"wide" if wide else ""}"><figcaption><h2>{html.escape(title)}</h2>{note}</figcaption>'
            f'<img src="{uri}" alt="{html.escape(title)}"></figure>')


def describe(model, input_shape=None):
    """The model in one line: 'input 28×28 → Linear 256 + ReLU → ... → Linear 10 (235,146 parameters)'."""
    parts = [f"input {'×'.join(str(d) for d in input_shape)}"] if input_shape else []
    for _, module in plots._layers(model):
        kind = type(module).__name__
        if kind == "Linear":
            parts.append(f"Linear {module.out_features}")
        elif kind.startswith("Conv"):
            size = "×".join(str(k) for k in np.atleast_1d(module.kernel_size))
            parts.append(f"{kind[:-2]} {module.out_channels} {size}")
        elif "Pool" in kind:
            parts.append(f"{kind[:-2]} {getattr(module, 'kernel_size', '')}".strip())
        elif kind.startswith("Dropout"):
            parts.append(f"{kind} {module.p:g}")
        elif kind in plots._ELEMENTWISE and parts:
            parts[-1] += f" + {kind}"
        elif kind != "Flatten":
            parts.append(kind)
    count = sum(p.array.size for p in model.parameters())
    return f"{' → '.join(parts)} ({count:,} parameters)"


def _settings_rows(settings, results):
    """The run's settings and results in words and plain numbers: no None, False or 17-digit floats."""
    hidden = ", ".join(str(h) for h in settings.get("hidden") or []) or "none"
    augment = settings.get("augment") or 0
    rows = {
        "dataset": settings.get("dataset"),
        "model": settings.get("model", "mlp").upper(),
        "hidden widths": hidden if settings.get("model", "mlp") == "mlp" else "(fixed architecture)",
        "epochs": settings.get("epochs"),
        "batch size": settings.get("batch_size"),
        "optimizer": settings.get("optimizer"),
        "peak learning rate (one-cycle)": f"{settings['lr']:g}" if "lr" in settings else None,
        "dropout": f"{settings['dropout']:g}" if settings.get("dropout") else "none",
        "augmentation": f"random shifts of up to {augment} pixel{'s' if augment > 1 else ''}" if augment else "none",
        "seed": settings.get("seed"),
        "data": settings.get("data_dir") or "bundled with lamina",
    }
    if settings.get("test_speaker"):
        rows["test set"] = f"everything {settings['test_speaker']} said (a voice never heard in training)"
    if results:
        rows.update({
            "test accuracy": f"{results['test_accuracy']:.2%}" if "test_accuracy" in results else None,
            "5-digit test lines read right": (f"{results['test_line_accuracy_5_digits']:.2%}"
                                              if "test_line_accuracy_5_digits" in results else None),
            "test loss per character": (f"{results['test_loss_per_character']:.4f} nats"
                                        if "test_loss_per_character" in results else None),
            "test loss": f"{results['test_loss']:.4f}",
            "training time": f"{results['seconds']:.1f} s",
            "epochs trained": f"{results['epochs']}" + (" (interrupted)" if results.get("interrupted") else ""),
        })
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows.items() if v is not None)


def instructive_samples(probs, y):
    """[(index, title)]: one right and sure, one right but unsure, one wrong (the most confident mistake)."""
    predicted, confidence = probs.argmax(1), probs.max(1)
    right, wrong = np.flatnonzero(predicted == y), np.flatnonzero(predicted != y)
    chosen = []
    if len(right):
        sure = right[np.argmax(confidence[right])]
        unsure = right[np.argmin(confidence[right])]
        chosen.append((sure, f"right and sure: {y[sure]} ({confidence[sure]:.1%})"))
        if unsure != sure:
            chosen.append((unsure, f"right but unsure: {y[unsure]} ({confidence[unsure]:.1%})"))
    if len(wrong):
        worst = wrong[np.argmax(confidence[wrong])]
        chosen.append((worst, f"wrong: a {y[worst]} taken for {predicted[worst]} ({confidence[worst]:.1%})"))
    return chosen


def _sequence_sections(task, model, settings, history, results):
    """(sections, test samples, headline, input shape) of a run of a sequence task."""
    curves = _figure("Loss per epoch" if task.name == "names" else "Loss and accuracy per epoch",
                     _png(lambda b: plots.plot_history(history, b)),
                     "The loss function scores the predictions; training lowers it epoch by epoch. "
                     "Validation is the held-out test set.")
    _, (x_test, y_test) = task.load(settings)
    if task.name == "spoken-digits":
        scores = np.concatenate([plots._predict(model, x_test[i:i + 300]) for i in range(0, len(x_test), 300)])
        chosen = instructive_samples(plots._probabilities(scores), y_test)
        sections = [curves, _figure("Confusion matrix on the test recordings",
                                    _png(lambda b: plots.confusion_matrix(y_test, scores, b)),
                                    "Rows: the digit said; columns: the digit heard."),
                    _figure("What each layer hears in three test recordings",
                            _png(lambda b: plots.representations(model, x_test[[i for i, _ in chosen]], b,
                                                                 titles=[t for _, t in chosen])),
                            "The top row is the recording as the network receives it: a log-mel spectrogram, time "
                            "running right, pitch up (40 mel bands up to 4 kHz), brighter where louder. Each "
                            "convolution slides along time; its row shows every channel (up) over time (across). "
                            "Pooling halves the frames; the last row is the network's answer.", wide=True)]
        headline = f"<strong>{results.get('test_accuracy', 0):.2%}</strong> test accuracy"
    elif task.name == "numbers":
        x5, y5 = task.five_digit_lines(settings)
        shown = np.arange(6)
        scores = plots._predict(model, x5[shown])
        sections = [curves, _figure("What the reader sees in each frame of six 5-digit test lines",
                                    _png(lambda b: plots.line_readings(x5[shown], scores, y5[shown], b)),
                                    "Under each line, in red, the digit the network read in each frame (a frame is 4 "
                                    "columns of pixels). In most frames it sees blank, CTC's 'no new digit here'; "
                                    "repeats of one digit in neighbouring frames are one digit. Nobody told it where "
                                    "the digits are: CTC only knew the right sequence.", wide=True)]
        headline = (f"<strong>{results.get('test_line_accuracy_5_digits', 0):.2%}</strong> of 5-digit test lines "
                    "read entirely right")
    else:
        generator = lamina.Generator().manual_seed(settings.get("seed", 0))
        names, known = task.sample(model, 20, generator=generator, data_dir=settings.get("data_dir"))
        listing = ", ".join(html.escape(n) for n in names)
        sections = [curves, f'<figure><figcaption><h2>Twenty names it made up</h2><p>{len(names) - known} of 20 '
                            f'are not in the training set.</p></figcaption><p class="names">{listing}</p></figure>']
        if isinstance(model, lamina.models.CharTransformer):
            example = min(task.context - 1, len(datasets.decode(x_test[0][1:]).split(".")[0]) + 1)
            text = datasets.decode(x_test[0][:example])
            weights = [w[0] for w in model.attention(lamina.tensor(x_test[:1, :example]))]
            sections.append(_figure(f"Where each letter looks: the attention of '{text[1:]}'",
                                    _png(lambda b: plots.attention_maps(weights, text, b)),
                                    "One map per layer (down) and head (across). Row t is what position t attends to "
                                    "when it predicts the next letter: only itself and the letters before it (the "
                                    "causal mask); brighter is more weight.", wide=True))
        headline = (f"<strong>{results.get('test_loss_per_character', float('nan')):.4f}</strong> nats per character "
                    "on the test names")
    return sections, len(x_test), headline, x_test.shape[1:]


def write_report(run_dir):
    """Build run_dir/report.html from the run's model, settings, history (and boundary frames)."""
    run = Path(run_dir)
    model = lamina.load(run / "model.npz")
    settings = json.loads((run / "settings.json").read_text())
    history = json.loads((run / "history.json").read_text())
    document = lamina.io.read_metadata(run / "model.npz")
    results = document.get("metadata", {}).get("results", {})
    name = settings["dataset"]
    if name in tasks.TASKS:
        sections, n_test, headline, input_shape = _sequence_sections(tasks.TASKS[name], model, settings, history,
                                                                     results)
        return _write_page(run, model, settings, results, sections, n_test, headline, input_shape)
    (x_train, y_train), (x_test, y_test) = datasets.load(name, settings.get("data_dir"), settings.get("seed", 0))
    input_shape = x_test.shape[1:]
    x_train, x_test = datasets.as_model_input(model, x_train), datasets.as_model_input(model, x_test)
    scores = np.concatenate([plots._predict(model, x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])

    sections = [_figure("Loss and accuracy per epoch", _png(lambda b: plots.plot_history(history, b)),
                        "The loss function scores the predictions; training lowers it epoch by epoch. "
                        "Validation is the held-out test set."),
                _figure("Confusion matrix on the test set", _png(lambda b: plots.confusion_matrix(y_test, scores, b)),
                        "Rows: the true class; columns: the predicted one. Everything off the diagonal is a mistake.")]
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
                                "Each small map is one unit's output over the input plane.", wide=True))
    else:
        chosen = instructive_samples(plots._probabilities(scores), y_test)
        sections.append(_figure(
            "What each layer makes of three test digits",
            _png(lambda b: plots.representations(model, x_test[[i for i, _ in chosen]], b,
                                                 titles=[t for _, t in chosen])),
            "Each layer transforms the digit into a new representation (brighter: a larger value, on the scale at "
            "the right); the last one says which digit it is. Dropout is the identity at test time, so it has no row.",
            wide=True))
        sections.append(_figure("Most confident mistakes",
                                _png(lambda b: plots.misclassified(model, x_test, y_test, b)), wide=True))
    sections.append(_figure("Weights", _png(lambda b: plots.weights(model, b)), wide=True))
    accuracy = f"{results['test_accuracy']:.2%}" if results else "not recorded"
    headline = f"<strong>{accuracy}</strong> test accuracy"
    return _write_page(run, model, settings, results, sections, len(x_test), headline, input_shape)


def _write_page(run, model, settings, results, sections, n_test, headline, input_shape):
    name = settings["dataset"]
    seconds = f"{results['seconds']:.1f} s" if results else "not recorded"
    files = ", ".join(p.name for p in sorted(run.iterdir()) if p.is_file() and p.name != "report.html")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lamina run {html.escape(run.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1240px; margin: 1.5em auto; padding: 0 1em; color: #222; }}
.headline {{ font-size: 1.15em; line-height: 1.5; margin-bottom: 1em; }}
.headline strong {{ font-size: 1.6em; color: #1a5e20; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ text-align: left; padding: 3px 14px; border-bottom: 1px solid #eee; }}
th {{ color: #555; font-weight: normal; }}
main {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 0 2em; }}
figure {{ margin: 0 0 2.2em 0; }} figure.wide {{ grid-column: 1 / -1; }}
h2 {{ font-size: 1.1em; margin-bottom: 0.2em; }} img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
figcaption p {{ margin-top: 0; color: #555; max-width: 60em; }}
code {{ background: #f4f4f4; padding: 0 3px; }}
p.names {{ font-size: 1.2em; line-height: 1.7; }}
</style></head><body>
<h1>lamina run {html.escape(run.name)}</h1>
<p class="headline">{headline} on <b>{html.escape(name)}</b>
({n_test:,} test samples) after {seconds} of training.<br>
Model: {html.escape(describe(model, input_shape))}.<br>
Files in <code>{html.escape(str(run))}</code>: {html.escape(files)}.</p>
<table>{_settings_rows(settings, results)}</table>
<main>
{''.join(sections)}
</main>
</body></html>
"""
    path = run / "report.html"
    write_atomically(path, lambda f: f.write(page.encode()))
    return path


def save_boundary_frames(recorder, run_dir):
    gx, gy = recorder.grid
    arrays = dict(frames=np.stack(recorder.frames), epochs=np.asarray(recorder.epochs), gx=gx, gy=gy)
    write_atomically(Path(run_dir) / "boundary_frames.npz", lambda f: np.savez(f, **arrays))
