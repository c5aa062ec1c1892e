"""One run per output folder: an exclusive ``flock`` on ``DIR/.lock``, which holds the holder's pid.

Two renders into the same folder would delete each other's unfinished shards, so the second stops at
once with one line. The kernel drops a flock when its holder dies, so a lock left by a killed run
(kill -9, OOM) is simply taken over by the next run; the file is removed on a clean release.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synth.dataset.layout import LOCK_FILE
from synth.errors import ConfigError, SimrealError


class OutputBusyError(SimrealError):
    """Another run is rendering into this output folder."""


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock (creating the folder) for the duration of the block."""
    out_dir = Path(out_dir)
    make_output_dir(out_dir)
    path = out_dir / LOCK_FILE
    fd = _acquire(path, out_dir)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: nobody can have locked the file we remove
        os.close(fd)


def make_output_dir(out_dir: Path) -> None:
    """Create the output folder, or stop with one line when a file (or an unwritable place) is in the way."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(out_dir, "is a file, not a folder; choose another output folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(out_dir, f"cannot create the output folder ({e.strerror or e})") from None


def _acquire(path: Path, out_dir: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusyError(out_dir, f"is being rendered by another run (pid {holder})") from None
        if _is_current(fd, path):
            return fd
        os.close(fd)  # the previous holder removed the file between our open and our lock: open it again


def _is_current(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return os.fstat(fd).st_ino == st.st_ino and os.fstat(fd).st_dev == st.st_dev
