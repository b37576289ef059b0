"""Atomic writes: killed saves leave nothing that accumulates, live saves are never disturbed, modes are kept."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lamina import files

ROOT = Path(__file__).resolve().parent.parent

# A save whose write() stops halfway, so that the test can kill it with its temporary file open.
_SLOW_SAVE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from lamina.files import write_atomically
    def write(f):
        f.write(b"x" * 100_000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
    write_atomically({path!r}, write)
""")


def _start_slow_save(path):
    process = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE.format(root=str(ROOT), path=str(path))],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    return process


def _temporaries(directory):
    return sorted(p.name for p in directory.iterdir() if ".lamina-tmp-" in p.name)


def _age(directory, seconds=60):
    for name in _temporaries(directory):
        past = time.time() - seconds
        os.utime(directory / name, (past, past))


@pytest.mark.skipif(files.fcntl is None, reason="needs flock")
def test_killed_saves_leave_nothing_that_accumulates(tmp_path):
    target = tmp_path / "model.npz"
    for _ in range(3):
        process = _start_slow_save(target)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert len(_temporaries(tmp_path)) == 3 and not target.exists()
    _age(tmp_path)
    files.write_atomically(target, lambda f: f.write(b"whole"))
    assert _temporaries(tmp_path) == [] and target.read_bytes() == b"whole"


@pytest.mark.skipif(files.fcntl is None, reason="needs flock")
def test_a_save_in_progress_elsewhere_is_left_alone(tmp_path):
    process = _start_slow_save(tmp_path / "a.npz")
    try:
        _age(tmp_path)
        files.write_atomically(tmp_path / "b.npz", lambda f: f.write(b"b"))
        assert len(_temporaries(tmp_path)) == 1  # the other process's file is still being written
    finally:
        process.kill()
        process.wait()
    assert files.remove_stale_temporaries(tmp_path) == 1  # dead now, and old: cleaned up


def test_an_error_during_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        files.write_atomically(target, fail)
    assert target.read_bytes() == b"old" and _temporaries(tmp_path) == []


def test_saving_over_a_file_keeps_its_mode_and_new_files_follow_the_umask(tmp_path):
    target = tmp_path / "secret.npz"
    target.write_bytes(b"old")
    target.chmod(0o600)
    files.write_atomically(target, lambda f: f.write(b"new"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"new"
    mask = os.umask(0o022)
    os.umask(mask)
    files.write_atomically(tmp_path / "fresh.npz", lambda f: f.write(b"x"))
    assert stat.S_IMODE((tmp_path / "fresh.npz").stat().st_mode) == 0o666 & ~mask


def test_saving_never_changes_the_process_umask(tmp_path, monkeypatch):
    """Another thread creating files meanwhile must never see a umask of 0."""
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    threads = [threading.Thread(target=files.write_atomically, args=(tmp_path / f"{i}.npz", lambda f: f.write(b"x")))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [] and len(list(tmp_path.glob("*.npz"))) == 4


def test_ctrl_c_during_a_save_waits_for_the_whole_file(tmp_path):
    target = tmp_path / "m.npz"

    def write(f):
        f.write(b"first half ")
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C mid-save
        f.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        files.write_atomically(target, write)
    assert target.read_bytes() == b"first half second half" and _temporaries(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
