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
