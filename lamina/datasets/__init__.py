"""The datasets of the essay: handwritten digits and numbers, spoken digits, names, the admissions example,
and 2-D toy sets.

Image sets come back as ((x_train, y_train), (x_test, y_test)) with uint8
images and int64 labels, as Keras returns them; `scale` turns images into
float32 in [0, 1]. The 2-D sets come back as (X float32 of shape (n, 2),
y int64 of shape (n,)). The sequence sets (spoken_digits, names, number_lines)
say what they return in their own docstrings.
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from lamina.datasets.cache import DatasetError, data_dir
from lamina.datasets.idx import IDXError, read_idx
from lamina.datasets.lines import PAD, make_lines
from lamina.datasets.speech import SPEAKERS, spoken_digits
from lamina.datasets.text import VOCABULARY, decode, encode, name_sequences, name_windows, names

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DIGITS_DIR = Path(__file__).resolve().parent / "digits"


def scale(images):
    """uint8 images as float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32) * np.float32(1 / 255)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path):
    """Check one MNIST file against its published SHA-256; raise DatasetError on a mismatch."""
    path = Path(path)
    expected = MNIST_SHA256[path.name]
    actual = _sha256(path)
    if actual != expected:
        raise DatasetError(f"{path}: SHA-256 is {actual}, expected {expected}; the file is damaged or not MNIST")


def _load_split(directory, images, labels):
    x, y = read_idx(Path(directory) / images), read_idx(Path(directory) / labels)
    if len(x) != len(y):
        raise IDXError(f"{directory}: {len(x)} images but {len(y)} labels")
    return x, y.astype(np.int64)


def digits():
    """MNIST digits shipped with lamina: the first 10,000 training images and all 10,000 test images.

    MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, under CC BY-SA 3.0
    (see lamina/datasets/digits/README.md).

    >>> (x_train, y_train), (x_test, y_test) = digits()
    >>> x_train.shape, x_train.dtype, y_test.shape, y_test.dtype
    ((10000, 28, 28), dtype('uint8'), (10000,), dtype('int64'))
    """
    train = _load_split(DIGITS_DIR, MNIST_FILES["train_images"], MNIST_FILES["train_labels"])
    test = _load_split(DIGITS_DIR, MNIST_FILES["test_images"], MNIST_FILES["test_labels"])
    return train, test


def default_mnist_dir():
    return data_dir("mnist")


def _download(name, directory, mirrors, timeout):
    errors = []
    for mirror in mirrors:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response, os.fdopen(fd, "wb") as f:
                while block := response.read(1 << 20):
                    f.write(block)
            actual = _sha256(tmp)
            if actual != MNIST_SHA256[name]:
                raise DatasetError(f"checksum mismatch (SHA-256 {actual})")
            os.replace(tmp, Path(directory) / name)
            return
        except (OSError, urllib.error.URLError, DatasetError) as e:
            errors.append(f"{mirror}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DatasetError(
        f"could not download {name} ({'; '.join(errors)}). Put the four MNIST files "
        f"({', '.join(MNIST_FILES.values())}) into {directory}, or pass root= (--data-dir) to where they are."
    )


def mnist(root=None, download=True, mirrors=MNIST_MIRRORS, timeout=30):
    """The full MNIST set: 60,000 training and 10,000 test digits, read from `root`.

    `root` defaults to $LAMINA_DATA/mnist, else ~/.cache/lamina/mnist. Missing
    files are downloaded from the usual mirrors in turn when `download` is set,
    checked against MNIST's SHA-256 sums and written atomically.
    """
    directory = Path(root) if root is not None else default_mnist_dir()
    missing = [name for name in MNIST_FILES.values() if not (directory / name).exists()]
    if missing and not download:
        raise DatasetError(f"MNIST files missing from {directory}: {', '.join(missing)}; "
                           "pass download=True or put the files there")
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        for name in missing:
            _download(name, directory, mirrors, timeout)
    for name in MNIST_FILES.values():
        verify_file(directory / name)
    train = _load_split(directory, MNIST_FILES["train_images"], MNIST_FILES["train_labels"])
    test = _load_split(directory, MNIST_FILES["test_images"], MNIST_FILES["test_labels"])
    return train, test


def number_lines(n_train=10_000, n_test=1_000, digits_per_line=(3, 8), source="digits", seed=0, root=None):
    """Lines of handwritten digits: ((x_train, targets_train, lengths_train), (x_test, targets_test, lengths_test)).

    Training lines are made of training digits only and test lines of test digits only, from the
    bundled digits() (offline) or, with source="mnist", the full mnist(root). `digits_per_line` is a
    count (5 for the 5-digit test lines) or (fewest, most). x: uint8 (n, 28, 28 * most), the line at a
    random offset and padded with blank columns to that width; targets: int64 (n, most), digits left
    to right then PAD (-1); lengths: int64 (n,). For CTC, shift the digits by one to keep 0 for blank.
    The lines are the same for the same arguments (`seed`).
    """
    if source not in ("digits", "mnist"):
        raise ValueError(f"number_lines: source must be 'digits' or 'mnist', not {source!r}")
    (x_train, y_train), (x_test, y_test) = digits() if source == "digits" else mnist(root=root)
    train = make_lines(x_train, y_train, n_train, digits_per_line, rng=np.random.default_rng([seed, 0]))
    test = make_lines(x_test, y_test, n_test, digits_per_line, rng=np.random.default_rng([seed, 1]))
    return train, test


def read_handwriting(path, height=28, width=28):
    """A photo or scan of handwriting as MNIST's digits look: float32 (height, width) in [0, 1], white ink on black.

    width=None keeps the picture's proportions (a line of digits, scaled to `height`). A dark digit on light
    paper, as written, is turned around. Needs Pillow (the `image` extra).
    """
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("reading images needs Pillow: pip install 'lamina[image]'") from None
    try:
        with Image.open(path) as img:
            gray = img.convert("L")
            size = (width or max(4, round(gray.width * height / gray.height)), height)
            pixels = np.asarray(gray.resize(size, Image.LANCZOS), dtype=np.float32) / 255
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return 1 - pixels if border.mean() > 0.5 else pixels


# --- 2-D sets --------------------------------------------------------------------------------------
def _flip(y, noise, rng):
    flip = rng.random(len(y)) < noise
    return np.where(flip, 1 - y, y).astype(np.int64)


def admissions(n=400, noise=0.05, seed=0):
    """The essay's example: each student's grade and test score as fractions of the maximum.

    A student is admitted (label 1) when both are at least one half; `noise`
    is the fraction of labels flipped, as real admissions are not that tidy.
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    y = ((X[:, 0] >= 0.5) & (X[:, 1] >= 0.5)).astype(np.int64)
    return X, _flip(y, noise, rng)


def moons(n=400, noise=0.1, seed=0):
    """Two interleaving half circles."""
    rng = np.random.default_rng(seed)
    upper = n // 2
    angles = np.concatenate([np.linspace(0, np.pi, upper), np.linspace(0, np.pi, n - upper)])
    X = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    X[upper:] = np.stack([1 - np.cos(angles[upper:]), 0.5 - np.sin(angles[upper:])], axis=1)
    y = np.concatenate([np.zeros(upper), np.ones(n - upper)]).astype(np.int64)
    X += rng.normal(0, noise, X.shape)
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


def circles(n=400, noise=0.05, factor=0.5, seed=0):
    """A small circle inside a large one."""
    rng = np.random.default_rng(seed)
    outer = n // 2
    angles = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(np.arange(n) < outer, 1.0, factor)
    X = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1) + rng.normal(0, noise, (n, 2))
    y = (np.arange(n) >= outer).astype(np.int64)
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


def spiral(n=400, noise=0.1, turns=1.5, seed=0):
    """Two arms of a spiral wound around each other."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.sqrt(rng.uniform(0, 1, n)) * turns * 2 * np.pi
    arm = (np.arange(n) >= half).astype(np.int64)
    angle = t + np.pi * arm
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (turns * 2 * np.pi)
    X += rng.normal(0, noise / 3, X.shape)
    order = rng.permutation(n)
    return X[order].astype(np.float32), arm[order]


def xor(n=400, noise=0.05, seed=0):
    """Points in [-1, 1]^2, labelled 1 where the two coordinates have different signs."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    y = ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(np.int64)
    return X.astype(np.float32), _flip(y, noise, rng)


TOY_SETS = {"admissions": admissions, "moons": moons, "circles": circles, "spiral": spiral, "xor": xor}
IMAGE_SETS = ("digits", "mnist")
SEQUENCE_SETS = ("spoken-digits", "numbers", "names")


def as_model_input(model, images):
    """Images (N, H, W) shaped for `model`: a channel axis (N, 1, H, W) when its first weighted layer is a Conv2d."""
    from lamina.nn import Conv2d, Linear  # nn sits below datasets' callers; imported on use

    for module in model.modules():
        if isinstance(module, (Conv2d, Linear)):
            return images[:, None] if isinstance(module, Conv2d) else images
    return images


def load(name, data_dir=None, seed=0):
    """A dataset by name, ready to train on: ((x_train, y_train), (x_test, y_test)).

    Images are scaled to [0, 1]; a 2-D set is drawn with 1,000 points, the last 200 held out for testing.
    The sequence sets: "spoken-digits" gives float32 log-mel features (n, 80 frames, 40 bands) and the
    digit, on the official split; "numbers" float32 lines (n, 28, 224) of 3 to 8 digits and int64
    targets (n, 8) padded with PAD; "names" int64 windows of the 32 characters before each character
    (n, 32) and that character (n,). `data_dir` is the folder holding the MNIST files, the FSDD tarball
    or names.txt.
    """
    if name == "digits":
        (xt, yt), (xv, yv) = digits()
    elif name == "mnist":
        (xt, yt), (xv, yv) = mnist(root=data_dir)
    elif name == "spoken-digits":
        (xt, yt, _), (xv, yv, _) = spoken_digits(features="logmel", root=data_dir)
        return (xt, yt), (xv, yv)
    elif name == "numbers":
        (xt, yt, _), (xv, yv, _) = number_lines(seed=seed)
    elif name == "names":
        train, test = names(root=data_dir)
        return name_windows(train, 32), name_windows(test, 32)
    elif name in TOY_SETS:
        X, y = TOY_SETS[name](n=1000, seed=seed)
        return (X[:800], y[:800]), (X[800:], y[800:])
    else:
        known = IMAGE_SETS + SEQUENCE_SETS + tuple(TOY_SETS)
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(known)}")
    return (scale(xt), yt), (scale(xv), yv)

__all__ = [
    "PAD", "SPEAKERS", "VOCABULARY", "DatasetError", "IDXError", "MNIST_FILES", "admissions", "as_model_input",
    "circles", "decode", "digits", "encode", "load", "mnist", "moons", "name_sequences", "name_windows", "names",
    "number_lines", "read_handwriting", "read_idx", "scale", "spiral", "spoken_digits", "verify_file", "xor",
]
