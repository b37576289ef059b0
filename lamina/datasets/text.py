"""Names for character-level language modelling: 32,033 first names, one a line, lowercase a-z.

From the makemore repository by Andrej Karpathy (github.com/karpathy/makemore, MIT license), compiled
from US Social Security Administration baby-name data. Not bundled: read from $LAMINA_DATA/names/
(or ~/.cache/lamina/names/), downloaded once from GitHub when missing.

A model reads a name one character at a time and predicts the next; '.' (index 0) stands for the
start before the first letter and the end after the last, so a sampler knows when a name is done.

>>> encode("ava")
array([ 1, 22,  1])
>>> x, y = name_windows(["ava"], context=3)
>>> [(decode(c), decode([t])) for c, t in zip(x, y)]
[('...', 'a'), ('..a', 'v'), ('.av', 'a'), ('ava', '.')]
"""

import numpy as np

from lamina.datasets.cache import DatasetError, data_dir, download_once, sha256_bytes
from lamina.files import regular_file_size

NAMES_COMMIT = "988aa59e4d8fefa526d06f3b453ad116258398d4"
NAMES_URL = f"https://raw.githubusercontent.com/karpathy/makemore/{NAMES_COMMIT}/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
VOCABULARY = ".abcdefghijklmnopqrstuvwxyz"  # 27 symbols; '.' starts and ends every name
IGNORE = -100  # target of padding positions in name_sequences; cross_entropy's default ignore_index
_INDEX = {c: i for i, c in enumerate(VOCABULARY)}


def _check(data, source):
    actual = sha256_bytes(data)
    if actual != NAMES_SHA256:
        raise DatasetError(f"{source}: SHA-256 is {actual}, expected {NAMES_SHA256}; the file is damaged "
                           f"or not makemore's names.txt at commit {NAMES_COMMIT[:7]}")


def names(seed=0, test_fraction=0.1, root=None, download=True, timeout=60):
    """(train_names, test_names): the 32,033 names as two lists of str, split at random with `seed`.

    The default split (seed 0, 10% test: 28,830 and 3,203 names) is the one test losses are reported on.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"names: test_fraction must be between 0 and 1, got {test_fraction}")
    path = data_dir("names", root) / "names.txt"
    if path.exists():
        if regular_file_size(path, DatasetError, "datasets") > 1 << 20:  # not a FIFO, a device or a huge file
            raise DatasetError(f"{path}: larger than makemore's names.txt (228 KB); refusing to read it")
        data = path.read_bytes()
        _check(data, path)
    elif download:
        data = download_once(NAMES_URL, path, lambda data: _check(data, NAMES_URL), 1 << 20, timeout)
    else:
        raise DatasetError(f"{path} is missing; pass download=True, or put makemore's names.txt there")
    words = data.decode("ascii").split()
    order = np.random.default_rng(seed).permutation(len(words))
    n_test = round(len(words) * test_fraction)
    return [words[i] for i in order[n_test:]], [words[i] for i in order[:n_test]]


def encode(text):
    """A string of a-z and '.' as an int64 array of vocabulary indices."""
    try:
        return np.array([_INDEX[c] for c in text], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"encode: {e.args[0]!r} in {text!r} is not in the vocabulary {VOCABULARY!r}") from None


def decode(indices):
    """Vocabulary indices back to a string ('.' included)."""
    indices = np.asarray(indices).reshape(-1)
    if indices.size and not (0 <= indices.min() and indices.max() < len(VOCABULARY)):
        raise ValueError(f"decode: indices must lie in [0, {len(VOCABULARY)}), got {indices.min()}..{indices.max()}")
    return "".join(VOCABULARY[i] for i in indices)


def name_windows(words, context=32):
    """(x, y) for next-character prediction: int64 x of shape (n, context), y of shape (n,).

    One row per character of every name plus its end: the `context` characters before it (padded on the
    left with '.') and the character itself. n = sum(len(name) + 1); the mean of the loss over all rows
    is the loss per character.
    """
    if context < 1:
        raise ValueError(f"name_windows: context must be at least 1, got {context}")
    padded = [np.concatenate([np.zeros(context, np.int64), encode(w), [0]]) for w in words]
    x = np.concatenate([np.lib.stride_tricks.sliding_window_view(p[:-1], context) for p in padded])
    y = np.concatenate([p[context:] for p in padded])
    return x, y


def name_sequences(words, context=16):
    """(x, y) for a causal model that predicts at every position: int64 arrays of shape (n_names, context).

    x is '.' then the name, y the name then '.', so y[t] is the character after x[:t + 1]; positions past
    the end are 0 in x and IGNORE in y. `context` must exceed the longest name (15 letters).
    """
    longest = max(len(w) for w in words)
    if context < longest + 1:
        raise ValueError(f"name_sequences: context {context} is too short for a {longest}-letter name; "
                         f"use at least {longest + 1}")
    x = np.zeros((len(words), context), np.int64)
    y = np.full((len(words), context), IGNORE, np.int64)
    for row, w in enumerate(words):
        codes = encode(w)
        x[row, 1:len(w) + 1] = codes
        y[row, :len(w) + 1] = np.append(codes, 0)
    return x, y


__all__ = ["IGNORE", "NAMES_URL", "VOCABULARY", "decode", "encode", "name_sequences", "name_windows", "names"]
