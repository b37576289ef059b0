"""Reading and writing IDX files, the format MNIST ships in (optionally gzip-compressed)."""

import gzip
import os
import zlib

import numpy as np

from lamina.files import write_atomically

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


class IDXError(ValueError):
    """A file is not a well-formed IDX file."""


def read_idx(path):
    """Return the array stored in an IDX file (.gz or plain), checking its header against its length."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise IDXError(f"{path}: the gzip stream is truncated or corrupted ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise IDXError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise IDXError(f"{path}: IDX header declares {ndim} dims but the file ends after {len(raw)} bytes")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise IDXError(f"{path}: IDX file is {problem}: shape {shape} needs {expected} bytes of data, found {found}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


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
