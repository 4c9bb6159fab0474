"""One search process per sweep folder: an exclusive ``flock`` on ``<sweep dir>/.search.lock``.

Two processes running (or resuming) the same search would launch the same candidates and both write
``search_state.pt``. The sweeper holds this lock from before it reads the state until it ends; a second
process refuses in one line naming the folder and the holder's pid (written into the lock file). The kernel
releases a ``flock`` when its holder dies, SIGKILL included, so a killed search never leaves its folder stuck:
the file may stay, the lock does not (once the processes the holder forked, which share it, have ended too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from falsr.errors import UserError

LOCK_NAME = ".search.lock"


def acquire(sweep_dir: str | Path, orphan_wait_s: float = 30.0) -> int:
    """Take the sweep folder's lock without waiting; returns its fd (close it to release). A UserError, one
    line, when another live process holds it.

    A process forked by the holder without exec (a data-loader worker) shares the lock until it exits: when the
    recorded holder is a process of this host that has ended, its orphans are given ``orphan_wait_s`` to exit
    (data-loader workers notice their parent's death within seconds)."""
    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    waited_until = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
            pid, _, host = holder.partition(" on ")
            ended = host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))
            if ended and waited_until is None:
                waited_until = time.monotonic() + orphan_wait_s
            if not ended or time.monotonic() > waited_until:
                os.close(fd)
                shown = f"pid {holder or 'unknown'}" + (", ended; a process it started still holds it" if ended else "")
                raise UserError(
                    f"{folder} is in use by another search process ({shown}): wait for it to end or "
                    f"stop it, then resume with search.resume={folder}"
                ) from None
            time.sleep(0.5)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def sweep_lock(sweep_dir: str | Path) -> Iterator[None]:
    """Hold the sweep folder's lock inside (see :func:`acquire`)."""
    fd = acquire(sweep_dir)
    try:
        yield
    finally:
        os.close(fd)
