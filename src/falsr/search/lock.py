"""One search process per sweep folder: an exclusive ``flock`` on ``<sweep dir>/.search.lock``.

Two processes running (or resuming) the same search would launch the same candidates and both write
``search_state.pt``. The sweeper holds this lock from before it reads the state until it ends; a second
process refuses in one line naming the folder and the holder's pid (written into the lock file). The kernel
releases a ``flock`` when its holder dies, SIGKILL included, so a killed search never leaves its folder stuck:
the file may stay, the lock does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from falsr.errors import UserError

LOCK_NAME = ".search.lock"


def acquire(sweep_dir: str | Path) -> int:
    """Take the sweep folder's lock without waiting; returns its fd (close it to release). A UserError, one
    line, when another live process holds it."""
    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise UserError(f"{folder} is in use by another search process (pid {holder}): wait for it to end or stop "
                        f"it, then resume with search.resume={folder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def sweep_lock(sweep_dir: str | Path) -> Iterator[None]:
    """Hold the sweep folder's lock inside (see :func:`acquire`)."""
    fd = acquire(sweep_dir)
    try:
        yield
    finally:
        os.close(fd)
