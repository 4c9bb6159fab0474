"""Mistakes a user can fix (bad genome, missing data, wrong file), and how an entry point shows them: one line.

Here, at the bottom of the package, so every layer's own entry point (``python -m falsr.search.predictor``) can use
it without importing the command-line helpers above it (tests/test_imports.py).
"""

from __future__ import annotations

import contextlib
import os
import sys

from omegaconf.errors import MissingMandatoryValue


class UserError(ValueError):
    """Raised for bad input; entry points print its message as one line, without a traceback."""


# Errors that are the user's to fix: shown as one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, MissingMandatoryValue)


@contextlib.contextmanager
def exit_on_user_error():
    """A user error raised inside (a task, or the sweeper) ends the program with one line and exit code 2."""
    try:
        yield
    except Exception as exc:  # re-raised unless a user error is behind it
        err = _user_error_in(exc)
        if err is None or os.environ.get("FALSR_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, MissingMandatoryValue):
            message = f"missing required value {err.full_key} (set it on the command line: {err.full_key}=...)"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _user_error_in(exc: BaseException) -> BaseException | None:
    """The user error behind `exc` (Hydra's instantiate wraps errors raised in targets)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, USER_ERRORS):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class DiskFullError(UserError):
    """The disk (or quota) of a folder the program writes to is full: one line naming the folder and the fix."""


DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (Linux)


def disk_full(exc: BaseException | None) -> OSError | None:
    """The "no space left on device" (or "disk quota exceeded") OSError behind ``exc``, following its causes and
    contexts (torch.save and Lightning raise their own errors on top of it); None when there is none."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_error(folder, err: OSError) -> DiskFullError:
    """The one-line error of a search stopped by a full disk: the folder, what failed and how to go on."""
    what = f" writing {err.filename}" if getattr(err, "filename", None) else ""
    return DiskFullError(
        f"no space left on the device of {folder} ({err.strerror or err}{what}): the search "
        "stopped; its journal keeps every finished candidate. Free space on that disk (or move the "
        f"folder to a larger one), then continue with search.resume={folder} (or the folder's new "
        "path)"
    )


def quiet_disk_full_logging() -> None:
    """Log handlers that cannot write for a full disk stay silent instead of printing logging's "--- Logging error
    ---" traceback for every record (the search stops on the full disk with one line); other logging errors print as
    before. For the whole process, once."""
    import logging
    import sys

    original = logging.Handler.handleError
    if getattr(original, "quiet_disk_full", False):
        return

    def handle_error(self, record):
        if disk_full(sys.exc_info()[1]) is None:
            original(self, record)

    handle_error.quiet_disk_full = True
    logging.Handler.handleError = handle_error
