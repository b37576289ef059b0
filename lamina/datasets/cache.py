"""Where datasets live on disk, and fetching one once: downloaded, checked, then written atomically."""

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from lamina.errors import LaminaError
from lamina.files import write_atomically


class DatasetError(LaminaError, RuntimeError):
    """A dataset is missing, unreachable, or fails its checksum."""


def data_dir(name, root=None):
    """The folder of dataset `name`: `root` if given, else $LAMINA_DATA/name, else ~/.cache/lamina/name."""
    if root is not None:
        return Path(root)
    base = os.environ.get("LAMINA_DATA")
    return Path(base) / name if base else Path.home() / ".cache" / "lamina" / name


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def download_once(url, path, check, limit, timeout=60):
    """Download `url` into memory (refusing more than `limit` bytes), let `check(data)` raise DatasetError
    if it is not what was promised, then write it to `path` atomically. Returns the bytes.

    Nothing is written unless the check passes, so a bad or interrupted download leaves no file behind.
    """
    path = Path(path)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(limit + 1)
    except (OSError, urllib.error.URLError) as e:
        raise DatasetError(f"could not download {url} ({e}); put {path.name} into {path.parent} "
                           "(or set LAMINA_DATA, or pass root=) to use a copy you already have") from None
    if len(data) > limit:
        raise DatasetError(f"{url}: more than {limit:,} bytes, far larger than {path.name} is; refusing it")
    check(data)
    write_atomically(path, lambda f: f.write(data))
    return data
