"""Reading and writing IDX files, the format MNIST ships in (optionally gzip-compressed)."""

import contextlib
import gzip
import math
import os
import zlib

import numpy as np

from lamina.datasets.cache import DatasetError
from lamina.files import regular_file_size, write_atomically

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


class IDXError(DatasetError, ValueError):
    """A file is not a well-formed IDX file."""


MAX_IDX_BYTES = 1 << 30  # the most data read_idx allocates unless told otherwise (all of MNIST is 55 MB)
_GZIP_MAX_RATIO = 1100  # deflate expands by at most about 1032 times: a stream cannot hold more than this
_CHUNK = 1 << 20


def read_idx(path, max_bytes=MAX_IDX_BYTES):
    """Return the array stored in an IDX file (.gz or plain), checking its header against its length.

    The header is read and checked first: a declared size beyond `max_bytes`, beyond what the file (or its
    gzip stream) can hold, is refused before anything is allocated; the data is then read, or decompressed
    piece by piece, straight into an array of exactly the declared size, so memory stays that size.
    """
    path = os.fspath(path)
    size = regular_file_size(path, IDXError, "IDX data")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        try:
            with (gzip.GzipFile(fileobj=raw) if compressed else contextlib.nullcontext(raw)) as f:
                array = _read_idx_body(f, path, size, compressed, max_bytes)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise IDXError(f"{path}: the gzip stream is truncated or corrupted ({e})") from None
    return array


def _read_idx_body(f, path, size, compressed, max_bytes):
    magic = f.read(4)  # read(n) returns fewer than n bytes only at the end of the file
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
        raise IDXError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'missing'})")
    ndim = magic[3]
    dims = f.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise IDXError(f"{path}: IDX header declares {ndim} dims but the file ends after {4 + len(dims)} bytes")
    shape = tuple(int(n) for n in np.frombuffer(dims, ">u4"))
    dtype = np.dtype(_TYPES[magic[2]])
    expected = math.prod(shape) * dtype.itemsize
    if expected > max_bytes:
        raise IDXError(f"{path}: IDX header declares shape {shape} ({expected:,} bytes), more than the "
                       f"{max_bytes:,} bytes read_idx allows (pass max_bytes= to allow more)")
    if not compressed and expected != size - 4 - 4 * ndim:
        _wrong_length(path, shape, expected, size - 4 - 4 * ndim)
    if compressed and expected > size * _GZIP_MAX_RATIO:
        raise IDXError(f"{path}: IDX file is crafted or corrupted: shape {shape} needs {expected:,} bytes of data, "
                       f"more than a gzip stream of {size:,} bytes can hold")
    array = np.empty(shape, dtype)
    view, found = memoryview(array.reshape(-1).view(np.uint8)), 0
    while found < expected:  # a piece at a time, so that no second copy of the data is ever made
        n = f.readinto(view[found:found + _CHUNK])
        if not n:
            break
        found += n
    if found < expected or f.read(1):
        _wrong_length(path, shape, expected, found if found < expected else "more")
    if not dtype.isnative:  # the big-endian types, swapped in place
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _wrong_length(path, shape, expected, found):
    problem = "longer than its header says" if found == "more" or found > expected else "truncated"
    raise IDXError(f"{path}: IDX file is {problem}: shape {shape} needs {expected} bytes of data, found {found}")


def write_idx(path, array, compress=True):
    """Write a uint8 or int8 array as an IDX file, atomically (temporary file, then rename)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise IDXError(f"write_idx: only uint8 and int8 arrays are supported, not {array.dtype}")
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.tobytes()
    if compress:
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    write_atomically(path, lambda f: f.write(payload))
