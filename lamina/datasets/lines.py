"""Handwritten numbers: lines of several MNIST digits side by side, to be read whole (e.g. with CTC).

Each digit is cut to the columns that hold ink and laid left to right with a random gap, the line at
a random offset in a fixed-width canvas. Digits are drawn from whichever pool they are given, so lines
made from test digits never share a digit with lines made from training digits.
"""

import numpy as np

PAD = -1  # label after a line's last digit


def _digits_per_line(digits_per_line):
    low, high = (digits_per_line, digits_per_line) if np.isscalar(digits_per_line) else digits_per_line
    if not 1 <= low <= high:
        raise ValueError(f"number_lines: digits_per_line must be a count or (fewest, most) with "
                         f"1 <= fewest <= most, got {digits_per_line!r}")
    return int(low), int(high)


def make_lines(images, labels, count, digits_per_line=(3, 8), gap=(2, 8), rng=None):
    """(lines, targets, lengths) built from (n, 28, 28) uint8 digit images and their labels.

    lines: uint8 (count, 28, 28 * most), where `most` is the largest digits_per_line: every line fits
    (a digit's ink is at most 28 columns, and the gap is taken out of the next digit's 28). targets:
    int64 (count, most), the digits left to right, then PAD. lengths: int64 (count,), digits per line.
    `gap` is the (smallest, largest) blank columns between two digits' ink.
    """
    low, high = _digits_per_line(digits_per_line)
    if not 0 <= gap[0] <= gap[1]:
        raise ValueError(f"make_lines: gap must be (smallest, largest) with 0 <= smallest <= largest, got {gap!r}")
    rng = np.random.default_rng(rng)
    height, width = images.shape[1], images.shape[2] * high
    ink = images.max(axis=1) > 0  # (n, 28): the columns that hold ink
    first, last = ink.argmax(axis=1), ink.shape[1] - ink[:, ::-1].argmax(axis=1)
    lines = np.zeros((count, height, width), np.uint8)
    targets = np.full((count, high), PAD, np.int64)
    lengths = rng.integers(low, high + 1, count)
    for row, length in enumerate(lengths):
        chosen = rng.integers(0, len(images), length)
        widths = last[chosen] - first[chosen]
        gaps = np.minimum(rng.integers(gap[0], gap[1] + 1, length), images.shape[2] - widths)
        gaps[0] = 0
        x = rng.integers(0, width - (widths + gaps).sum() + 1)  # a random left margin
        for i, g, w in zip(chosen, gaps, widths):
            x += g
            lines[row, :, x:x + w] = images[i, :, first[i]:last[i]]
            x += w
        targets[row, :length] = labels[chosen]
    return lines, targets, lengths.astype(np.int64)
