"""The base class of mistakes a user can fix (bad genome, missing data, wrong file)."""


class UserError(ValueError):
    """Raised for bad input; entry points print its message as one line, without a traceback."""


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
    return DiskFullError(f"no space left on the device of {folder} ({err.strerror or err}{what}): the search "
                         "stopped; its journal keeps every finished candidate. Free space on that disk (or move the "
                         f"folder to a larger one), then continue with search.resume={folder} (or the folder's new "
                         "path)")


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
