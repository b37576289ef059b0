"""Pictures of what a network learned, written as PNG or SVG (GIF for animations).

representations: one input's journey through every layer, the essay's figure.
decision_boundary / hidden_units / boundary_animation: what a 2-D classifier
computes over its input plane. plot_history, confusion_matrix, misclassified,
weights: the training process and its result.
"""

import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import lamina  # noqa: E402
from lamina.training import Callback  # noqa: E402
from lamina.training import metrics as _metrics  # noqa: E402

DPI = 100


def _save(fig, path):
    """Write the figure (PNG or SVG, by the file's extension; PNG to a binary stream) and close it."""
    fig.savefig(path, dpi=DPI, format=None if isinstance(path, (str, bytes)) or hasattr(path, "suffix") else "png")
    plt.close(fig)
    return path


def _predict(model, x):
    was_training = model.training
    model.eval()
    try:
        with lamina.no_grad():
            where = next(model.parameters()).device  # the model's device; pictures are drawn from host arrays
            return model(lamina.tensor(np.asarray(x, dtype=np.float32), device=where)).detach()._host_array()
    finally:
        model.train(was_training)


def _probabilities(scores):
    """Class probabilities from raw model outputs: softmax for several classes, sigmoid for one."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] > 1:
        if np.all(scores >= 0) and np.allclose(scores.sum(1), 1, atol=1e-3):
            return scores  # already probabilities (a Softmax layer at the end)
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    p = scores.reshape(len(scores))
    if np.any(p < 0) or np.any(p > 1):
        p = 1 / (1 + np.exp(-p))
    return np.stack([1 - p, p], axis=1)


# --- representations -------------------------------------------------------------------------------
def _layers(model):
    """The layers to show, in the order data flows: a Sequential's children, else every leaf module."""
    if isinstance(model, lamina.nn.Sequential):
        return [(name, m) for name, m in model.named_children()]
    return [(name, m) for name, m in model.named_modules() if name and not list(m.children())]


def layer_outputs(model, x):
    """[(name, module, output array)] for one forward pass of x, captured with forward hooks."""
    captured, handles = [], []
    for name, module in _layers(model):
        handles.append(module.register_forward_hook(
            lambda m, inputs, out, name=name: captured.append((name, m, out.detach()._host_array().copy()))))
    try:
        _predict(model, x)
    finally:
        for h in handles:
            h.remove()
    return captured


def _mosaic(maps, columns=None, pad=1):
    """(K, H, W) maps tiled into one image, each normalized to its own range, NaN between tiles."""
    k, h, w = maps.shape
    columns = columns or math.ceil(math.sqrt(k))
    rows = math.ceil(k / columns)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad), np.nan)
    for i, m in enumerate(maps):
        low, high = np.nanmin(m), np.nanmax(m)
        scaled = (m - low) / (high - low) if high > low else np.zeros_like(m)
        r, c = divmod(i, columns)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = scaled
    return out


def _show_image(ax, image, title):
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None, interpolation="nearest")
    ax.set_title(title, fontsize=9, loc="left")
    ax.axis("off")


_ELEMENTWISE = ("ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid")
_INVISIBLE = ("Dropout", "Dropout2d", "Identity", "Flatten", "BandsAsChannels")  # identity at test time, or a reshape


def _stages(model, batch):
    """[(title, outputs)] worth a picture: an activation joins the layer before it, and Dropout, Identity
    and Flatten (the identity at test time, or a reshape) join the layer before them too."""
    stages = []
    for name, module, out in layer_outputs(model, batch):
        kind = type(module).__name__
        if stages and (kind in _INVISIBLE or kind in _ELEMENTWISE):
            title, _ = stages[-1]
            if kind in _ELEMENTWISE:
                stages[-1] = (f"{title} + {kind}", out)
            elif kind == "Flatten" and stages[-1][1].ndim > 2:
                stages[-1] = (f"{title}, then flattened", stages[-1][1])
            continue
        if kind in _INVISIBLE:  # a model that starts with Flatten: the input row shows the image it came from
            continue
        stages.append((f"{name}: {kind}", out))
    return stages


def _strip(vector, width=32):
    """A vector of units as a compact block of rows `width` wide (NaN where the last row ends)."""
    n = vector.size
    columns = min(n, width)
    rows = math.ceil(n / columns)
    block = np.full(rows * columns, np.nan)
    block[:n] = vector.ravel()
    return block.reshape(rows, columns)


def representations(model, x, path, class_names=None, max_maps=32, titles=None):
    """Every layer's output in the order data flows, for one input or a few side by side (one column each).

    `x` is one input, or a batch of inputs when `titles` names each. Convolutional
    feature maps are drawn as a grid of small images (each scaled to its own range),
    dense activations as a heat strip with its colour scale, and the last layer as
    class probabilities. Activations are drawn with the layer they follow; Dropout
    (the identity at test time) and Flatten add no row of their own.
    """
    x = np.asarray(x._host_array() if isinstance(x, lamina.Tensor) else x, dtype=np.float32)
    if titles is None:
        batch = x[None] if x.ndim in (1, 3) or (x.ndim == 2 and x.shape != (1, x.shape[1])) else x[:1]
        titles = [""]
    else:
        batch = x
        if len(titles) != len(batch):
            raise ValueError(f"representations: {len(batch)} inputs but {len(titles)} titles")
    stages = _stages(model, batch)
    if not stages:
        raise ValueError("representations: the model has no layers to show")
    k = len(batch)
    inputs = batch[:, 0] if batch.ndim == 4 and batch.shape[1] == 1 else batch
    layers = _layers(model)
    sound = bool(layers) and isinstance(layers[0][1], lamina.models.BandsAsChannels)
    if sound:  # spectrograms and what convolutions along time make of them: time across, bands or channels up
        inputs = inputs.transpose(0, 2, 1)[:, ::-1]
        stages = [(title, out[..., 0][:, ::-1] if out.ndim == 4 and out.shape[3] == 1 else out)
                  for title, out in stages]
    rows = [("input", inputs)] + stages[:-1]

    def height(out):
        if out.ndim == 3 and sound:
            return 0.4 + 2.2 * min(1.0, out.shape[1] / out.shape[2])
        if out.ndim == 4:
            maps = min(out.shape[1], max_maps)
            columns = min(8, maps)
            return 0.35 + 3.0 / columns * math.ceil(maps / columns) * out.shape[2] / out.shape[3]
        if out.ndim == 3:
            return 1.7
        return 0.35 + 0.12 * math.ceil(out.shape[1] / 32)

    heights = [height(out) for _, out in rows] + [1.3]
    fig = plt.figure(figsize=(3.2 * k + 0.9, sum(heights) + 0.4), layout="constrained")
    axes = fig.subplots(len(heights), k, squeeze=False, gridspec_kw={"height_ratios": heights})
    for column, title in enumerate(titles):
        if title:
            axes[0, column].set_title(title, fontsize=9, pad=14)
    for row, (label, out) in enumerate(rows):
        shown = None
        if out.ndim == 2:
            low, high = float(np.nanmin(out)), float(np.nanmax(out))
        for column in range(k):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if out.ndim == 4:
                maps = out[column][:max_maps]
                ax.imshow(_mosaic(maps, columns=min(8, len(maps))), cmap="magma", interpolation="nearest")
                ax.axis("off")
            elif out.ndim == 3:
                ax.imshow(out[column], cmap="magma" if sound else "gray_r", interpolation="nearest",
                          aspect="auto" if sound else "equal")
                ax.axis("off")
            else:
                shown = ax.imshow(_strip(out[column]), aspect="auto", cmap="magma", interpolation="nearest",
                                  vmin=low, vmax=high if high > low else low + 1)
        what = f"{label} {tuple(out.shape[1:])}"
        if out.ndim == 4 and out.shape[1] > max_maps:
            what += f", first {max_maps} of {out.shape[1]} maps"
        elif out.ndim == 4:
            what += ", each map on its own scale"
        axes[row, 0].text(0, 1.02, what, transform=axes[row, 0].transAxes, fontsize=8, va="bottom")
        if shown is not None:
            fig.colorbar(shown, ax=list(axes[row]), location="right", aspect=8, pad=0.01).ax.tick_params(labelsize=6)
    name, last = stages[-1]
    probs = _probabilities(last.reshape(k, -1))
    names = class_names or [str(i) for i in range(probs.shape[1])]
    for column in range(k):
        ax = axes[-1, column]
        bars = ax.bar(range(len(names)), probs[column], color="#bbbbbb")
        best = int(np.argmax(probs[column]))
        bars[best].set_color("#d62728")
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        ax.set_title(f"prediction {names[best]} ({probs[column, best]:.1%})", fontsize=8)
    axes[-1, 0].text(0, 1.25, f"{name}, as class probabilities", transform=axes[-1, 0].transAxes, fontsize=8,
                     va="bottom")
    return _save(fig, path)


# --- 2-D classifiers -------------------------------------------------------------------------------
def _grid(X, resolution, margin=0.1):
    X = np.asarray(X, dtype=np.float32)
    low, high = X.min(0), X.max(0)
    span = np.where(high > low, high - low, 1.0)
    xs = np.linspace(low[0] - margin * span[0], high[0] + margin * span[0], resolution, dtype=np.float32)
    ys = np.linspace(low[1] - margin * span[1], high[1] + margin * span[1], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], axis=1)


def boundary_image(model, X, resolution=150):
    """(gx, gy, probabilities over the grid) for a 2-D classifier."""
    gx, gy, points = _grid(X, resolution)
    return gx, gy, _probabilities(_predict(model, points)).reshape(*gx.shape, -1)


def _draw_boundary(ax, gx, gy, probs, X, y, title):
    classes = probs.shape[-1]
    if classes == 2:
        ax.contourf(gx, gy, probs[..., 1], levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.75)
        ax.contour(gx, gy, probs[..., 1], levels=[0.5], colors="k", linewidths=1)
    else:
        ax.contourf(gx, gy, probs.argmax(-1), levels=np.arange(classes + 1) - 0.5, cmap="tab10", alpha=0.45)
    if X is not None:
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r" if classes == 2 else "tab10", edgecolors="k",
                   linewidths=0.4, s=14, vmin=0, vmax=max(classes - 1, 1))
    ax.set_title(title, fontsize=10)
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())


def decision_boundary(model, X, y, path, resolution=200, title="decision boundary"):
    """The predicted class over the input plane, with the data points on top."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary: needs 2-D points of shape (n, 2), got {X.shape}")
    gx, gy, probs = boundary_image(model, X, resolution)
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    _draw_boundary(ax, gx, gy, probs, X, y, title)
    return _save(fig, path)


def hidden_units(model, X, path, resolution=60, max_units=16):
    """Each hidden unit's response over the input plane as a small heat map, one row per hidden layer.

    A layer followed by an activation is drawn after the activation, as TensorFlow
    Playground draws its neurons; at most `max_units` units a layer.
    """
    X = np.asarray(X)
    gx, gy, points = _grid(X, resolution)
    outputs = [(title, out) for title, out in _stages(model, points)[:-1] if out.ndim == 2]
    if not outputs:
        raise ValueError("hidden_units: the model has no hidden layers with unit outputs")
    columns = min(max_units, max(out.shape[1] for _, out in outputs))
    fig, axes = plt.subplots(len(outputs), 1, figsize=(0.58 * columns + 0.3, 0.78 * len(outputs) + 0.35),
                             squeeze=False, layout="constrained")
    for ax, (title, out) in zip(axes[:, 0], outputs):
        responses = out[:, :columns].T.reshape(-1, *gx.shape)[:, ::-1]  # (units, rows, columns), y upwards
        limits = np.maximum(np.abs(responses).max(axis=(1, 2), keepdims=True), 1e-6)
        # One image for the whole layer (one axes is far quicker to draw than one per unit); each unit is
        # scaled to its own strength, white at zero.
        tiles = np.full((gx.shape[0], columns * (gx.shape[1] + 3) - 3), np.nan)
        for unit, response in enumerate(responses / limits):
            tiles[:, unit * (gx.shape[1] + 3):unit * (gx.shape[1] + 3) + gx.shape[1]] = response
        ax.imshow(tiles, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.axis("off")
        shown = f", first {columns} shown" if out.shape[1] > columns else ""
        ax.set_title(f"{title} ({out.shape[1]} units{shown})", fontsize=8, loc="left")
    fig.suptitle("what each hidden unit computes over the input plane (red positive, blue negative, white 0)",
                 fontsize=9)
    return _save(fig, path)


class BoundaryRecorder(Callback):
    """Record a 2-D classifier's predictions over the input plane at the end of every `every` epochs."""

    def __init__(self, X, y, every=1, resolution=100):
        super().__init__()
        self.X, self.y, self.every, self.resolution = np.asarray(X), np.asarray(y), every, resolution
        self.frames, self.epochs = [], []

    def on_train_begin(self, logs=None):
        if not self.frames:
            self._record(-1)

    def _record(self, epoch):
        gx, gy, probs = boundary_image(self.model, self.X, self.resolution)
        self.grid = (gx, gy)
        self.frames.append(probs.astype(np.float32))
        self.epochs.append(epoch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._record(epoch)


def _points_layer(X, y, classes, size):
    """The data points as a transparent RGBA layer, drawn once and laid over every frame."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    low, high = X.min(0), X.max(0)
    span = np.where(high > low, high - low, 1.0)
    u = (X - (low - 0.1 * span)) / (1.2 * span) * (size - 1)  # the grid reaches 10% beyond the data (_grid)
    y = np.asarray(y)
    colours = (matplotlib.colormaps["RdBu_r"](y / max(classes - 1, 1)) if classes == 2
               else matplotlib.colormaps["tab10"](y % 10))
    for (px, py), colour in zip(u, colours):
        fill = tuple(int(255 * c) for c in colour[:3]) + (255,)
        draw.ellipse([px - 3, size - 1 - py - 3, px + 3, size - 1 - py + 3], fill=fill, outline=(0, 0, 0, 255))
    return layer


def boundary_frame(probs, X=None, y=None, size=320, points=None):
    """One recorded boundary as an RGB image (size x size), drawn with Pillow: quick enough for every epoch.

    Two classes: the probability of class 1 from blue through white to red; more:
    each class's colour, paler where the model is unsure. The points X on top
    (or `points`, a layer from an earlier call, to draw them only once).
    """
    from PIL import Image

    classes = probs.shape[-1]
    if classes == 2:
        rgb = matplotlib.colormaps["RdBu_r"](probs[..., 1])[..., :3]
    else:
        palette = matplotlib.colormaps["tab10"](np.arange(classes) % 10)[:, :3]
        confidence = probs.max(-1, keepdims=True)
        rgb = 1 - (1 - palette[probs.argmax(-1)]) * (0.25 + 0.5 * confidence)
    rgb = 0.4 + 0.6 * rgb  # paler than the points drawn on it
    image = Image.fromarray((rgb[::-1] * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    if points is None and X is not None:
        points = _points_layer(np.asarray(X), y, classes, size)
    if points is not None:
        image = Image.alpha_composite(image.convert("RGBA"), points).convert("RGB")
    return image


def boundary_animation(recorder, path, fps=6, max_frames=60):
    """The recorded boundaries as an animated GIF: learning as a search for a change of coordinates."""
    from PIL import ImageDraw

    if not recorder.frames:
        raise ValueError("boundary_animation: the recorder holds no frames; pass it to fit(callbacks=[...])")
    step = max(1, math.ceil(len(recorder.frames) / max_frames))
    chosen = list(range(0, len(recorder.frames), step))
    if chosen[-1] != len(recorder.frames) - 1:
        chosen.append(len(recorder.frames) - 1)
    points = _points_layer(recorder.X, recorder.y, recorder.frames[0].shape[-1], 320)
    images = []
    for i in chosen:
        image = boundary_frame(recorder.frames[i], points=points)
        ImageDraw.Draw(image).text((8, 6), f"epoch {recorder.epochs[i]}", fill=(0, 0, 0))
        images.append(image.quantize(128, method=2))  # 2: fast octree, a few ms a frame (median cut: 30)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


# --- the training process and its result --------------------------------------------------------------
def plot_history(history, path):
    """Loss and each metric per epoch, training against validation."""
    data = history.history if hasattr(history, "history") else history.get("history", history)
    names = [k for k in data if not k.startswith("val_") and k != "lr"]
    if not names:
        raise ValueError("plot_history: the history holds no values")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(data[name]) + 1)
        ax.plot(epochs, data[name], marker="o", markersize=3, label="training")
        if f"val_{name}" in data:
            ax.plot(np.arange(1, len(data[f"val_{name}"]) + 1), data[f"val_{name}"], marker="o", markersize=3,
                    label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, path, class_names=None):
    """Counts of true class (rows) against predicted class (columns); y_pred may be scores."""
    y_pred = np.asarray(y_pred)
    classes = (y_pred.shape[1] if y_pred.ndim == 2 and y_pred.shape[1] > 1 else None)
    counts = _metrics.confusion_matrix(y_true, y_pred, num_classes=classes)
    k = counts.shape[0]
    names = class_names or [str(i) for i in range(k)]
    side = max(3.4, 1 + 0.5 * k)  # room for the title, even with two classes
    fig, ax = plt.subplots(figsize=(side, side - 0.2), layout="constrained")
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix\naccuracy {np.trace(counts) / max(counts.sum(), 1):.2%}", fontsize=10)
    return _save(fig, path)


def misclassified(model, x, y, path, count=16, class_names=None):
    """A grid of the model's most confident mistakes, with true and predicted labels."""
    x, y = np.asarray(x), np.asarray(y)
    probs = _probabilities(np.concatenate([_predict(model, x[i:i + 1000]) for i in range(0, len(x), 1000)]))
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:count]
    names = class_names or [str(i) for i in range(probs.shape[1])]
    columns = min(8, max(len(order), 1))
    rows = max(1, math.ceil(len(order) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.55 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        _show_image(ax, x[i].reshape(28, 28) if x[i].size == 784 else x[i], "")
        ax.set_title(f"true {names[y[i]]}\npred {names[predicted[i]]} {probs[i, predicted[i]]:.0%}", fontsize=7)
    if len(order) == 0:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"most confident mistakes ({len(wrong)} of {len(y)} wrong)", fontsize=9)
    return _save(fig, path)


def weights(model, path, max_filters=32):
    """First-layer weights as images (for image models), and a histogram of every parameter and gradient."""
    params = list(model.named_parameters())
    if not params:
        raise ValueError("weights: the model has no parameters")
    first_name, first = next((n, p) for n, p in params if p.ndim >= 2)
    w = first.detach()._host_array()
    images = None
    if w.ndim == 4:
        images = w[:max_filters, 0] if w.shape[1] == 1 else w[:max_filters].mean(1)
    elif w.ndim == 2 and int(math.isqrt(w.shape[1])) ** 2 == w.shape[1]:
        side = math.isqrt(w.shape[1])
        images = w[:max_filters].reshape(-1, side, side)
    hist_rows = math.ceil(len(params) / 2)  # two histograms a row
    heights = ([2.2] if images is not None else []) + [1.5] * hist_rows
    fig = plt.figure(figsize=(9, sum(heights)))  # a fixed layout: the constrained one would double the time
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, left=0.06, right=0.98, wspace=0.15,
                            hspace=0.75, top=1 - 0.3 / sum(heights), bottom=0.35 / sum(heights))
    if images is not None:
        ax = fig.add_subplot(grid[0, :])
        ax.imshow(_mosaic(images, columns=min(16, len(images))), cmap="RdBu_r", interpolation="nearest")
        ax.set_title(f"{first_name}: what the first layer's units look for", fontsize=9, loc="left")
        ax.axis("off")
    first_row = 1 if images is not None else 0
    for i, (name, p) in enumerate(params):
        ax = fig.add_subplot(grid[first_row + i // 2, i % 2])
        # np.histogram + stairs: one artist per histogram, where ax.hist draws one patch per bin.
        ax.stairs(*np.histogram(p.detach()._host_array().ravel(), bins=60), fill=True, alpha=0.7, label="weights")
        if p.grad is not None:
            ax.stairs(*np.histogram(p.grad._host_array().ravel(), bins=60), fill=True, alpha=0.6, label="gradients")
            ax.legend(fontsize=7)
        ax.set_title(f"{name} {tuple(p.shape)}", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    return _save(fig, path)


# --- sequences -----------------------------------------------------------------------------------------
def line_readings(lines, scores, truths, path):
    """Lines of handwritten digits, each with what the reader saw in every frame below it: the digit it
    read where it read one, nothing where it saw blank (scores: (N, frames, 1 + 10), class 0 blank)."""
    lines, scores = np.asarray(lines), np.asarray(scores)
    best = scores.argmax(-1)
    fig, axes = plt.subplots(len(lines), 1, figsize=(9, 1.45 * len(lines)), squeeze=False, layout="constrained")
    for ax, line, frames, truth in zip(axes[:, 0], lines, best, truths):
        image = line.reshape(line.shape[-2], line.shape[-1])
        height, width = image.shape
        ax.imshow(image, cmap="gray_r", interpolation="nearest", extent=(0, width, height, 0))
        step = width / len(frames)
        for t, k in enumerate(frames):
            if k != 0:
                ax.text((t + 0.5) * step, height + 5, str(k - 1), ha="center", va="center", fontsize=7,
                        color="#d62728")
        ax.set_ylim(height + 10, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        changes = np.r_[True, frames[1:] != frames[:-1]]
        read = "".join(str(k - 1) for k in frames[changes] if k != 0)
        expected = "".join(str(d) for d in np.asarray(truth) if d >= 0)
        verdict = "right" if read == expected else f"wrong, it says {expected}"
        ax.set_title(f"read {read or '(nothing)'}: {verdict}", fontsize=9, loc="left")
    return _save(fig, path)


def attention_maps(weights, text, path):
    """Where each position of `text` looked: weights is a list over layers of (heads, T, T) arrays, drawn as a
    grid, layers down and heads across; row t of a map is position t's attention over positions 0..t."""
    layers, heads = len(weights), weights[0].shape[0]
    fig, axes = plt.subplots(layers, heads, figsize=(2.1 * heads + 0.6, 2.1 * layers), squeeze=False,
                             layout="constrained")
    labels = list(text)
    for layer, per_head in enumerate(weights):
        for head, w in enumerate(per_head):
            ax = axes[layer, head]
            ax.imshow(w, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=9)
            if head == 0:
                ax.set_ylabel(f"layer {layer + 1}", fontsize=9)
    return _save(fig, path)
