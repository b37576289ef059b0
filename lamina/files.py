"""Writing files so that they appear whole or not at all: a crash or Ctrl-C never leaves half a file.

The temporary file sits beside its target as `.<name>.lamina-tmp-<random>` and is locked (flock) while it
is written. A process killed mid-write leaves it behind unlocked; the next save in that directory
recognises such leftovers by name and by their free lock and removes them, while the lock keeps it away
from a file that another live process is still writing.
"""

import contextlib
import os
import secrets
import signal
import stat
import threading
import time

try:
    import fcntl
except ImportError:  # Windows: no flock; leftovers are then removed only by age
    fcntl = None

_MARK = ".lamina-tmp-"
_STALE_SECONDS_WITHOUT_LOCKS = 24 * 3600
_YOUNG_SECONDS = 5  # a file this new may be between its creation and its lock: leave it


def _locked_by_someone(path):
    """Whether another process holds the write lock on `path` (so it is still being written)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone already, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took


def remove_stale_temporaries(directory):
    """Delete temporary files that interrupted saves left in `directory`; returns how many."""
    removed = 0
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".") and _MARK in n]
    except OSError:
        return 0
    for name in names:
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < _YOUNG_SECONDS:
            continue
        if fcntl is not None:
            stale = not _locked_by_someone(path)
        else:
            stale = time.time() - info.st_mtime > _STALE_SECONDS_WITHOUT_LOCKS
        if stale:
            try:
                os.unlink(path)
                removed += 1
            except OSError:
                pass
    return removed


def _create_temporary(directory, name):
    """A new file beside the target, created with mode 0o666 so that the kernel applies the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{name}{_MARK}{secrets.token_hex(6)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C that arrives during the block until the block is done, then deliver it.

    A save interrupted half-way would be thrown away; one Ctrl-C too many must not cost the file. A
    process that ignores SIGINT (a background job) goes on ignoring it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or unknown: leave it as it is
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            previous(signal.SIGINT, received[0])


def write_atomically(path, write):
    """Call write(binary_file) on a temporary file beside `path`, then rename it over `path`.

    A file saved over keeps its permissions; a new one gets the usual ones (0o666 less the umask).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(directory)
    with _interrupts_deferred():
        _write_and_rename(path, directory, write)


def _write_and_rename(path, directory, write):
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # held until closed: a live save is never cleaned up
            try:
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # while still locked; a crash before this line leaves any earlier file untouched
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def regular_file_size(path, error, what="files"):
    """The size of `path`, raising `error` (an exception class) unless it is a regular file.

    A FIFO would block its reader forever, /dev/zero never ends and a folder cannot be read, so readers of
    model, dataset and IDX files call this before they open anything (os.stat looks without opening).
    """
    info = os.stat(path)
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return info.st_size
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a plain file")
    raise error(f"{path}: {kind}, not a regular file; lamina reads {what} only from regular files")
