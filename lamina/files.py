"""Writing files so that they appear whole or not at all: a crash or Ctrl-C never leaves half a file."""

import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, write):
    """Call write(binary_file) on a temporary file beside `path`, then rename it over `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file should get the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a crash before this line leaves any earlier file untouched
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
