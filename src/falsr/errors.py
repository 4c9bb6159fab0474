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
    return DiskFullError(f"no space left on the device of {folder} ({err.strerror or err}{what}): the search stopped; "
                         f"its journal keeps every finished candidate. Free space on that disk (or move the folder to a "
                         f"larger one), then continue with search.resume={folder} (or the folder's new path)")
