"""Shared bits of the Hydra entry points: where the configs live, and one-line user errors."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

from omegaconf.errors import MissingMandatoryValue

from falsr.errors import UserError

# The configs live at the repository top (conf/), beside train.py and search.py; the package is
# installed in editable mode (README), so they are found relative to this file.
CONF_DIR = Path(os.environ.get("FALSR_CONF_DIR", Path(__file__).resolve().parents[2] / "conf"))

# Errors that are the user's to fix: shown as one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, MissingMandatoryValue)


def user_errors(func):
    """Turn a user mistake raised inside a Hydra task into `error: <message>` and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with exit_on_user_error():
            if args and hasattr(args[0], "get"):
                use_space_of(args[0])
            return func(*args, **kwargs)

    return wrapper


def use_space_of(cfg):
    """Make the config's ``space`` (the paper's where it has none) the process's search space (falsr.space.genome)."""
    from falsr.space.genome import set_space, space_from_config

    space = space_from_config(cfg.get("space"))
    set_space(space)
    return space


@contextlib.contextmanager
def exit_on_user_error():
    """A user error raised inside (a task, or the sweeper) ends the program with one line and exit code 2."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised unless a user error is behind it
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


def fail(message: str) -> None:
    """A user mistake found before Hydra composes: `error: <message>` on one line and exit code 2, as in a task."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_group_choices(argv: list[str] | None = None) -> None:
    """Reject `group=name` overrides naming a config that does not exist, in one line.

    Hydra's own message for this is a multi-line dump of the search path; we check the simple
    `group=name` form before Hydra composes and leave everything else to Hydra.
    """
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.lstrip("+").partition("=")
        group = CONF_DIR / key
        if not sep or "." in key or "/" in key or not group.is_dir() or value in ("null", ""):
            continue
        if not (group / f"{value}.yaml").is_file():
            options = ", ".join(sorted(p.stem for p in group.glob("*.yaml")))
            fail(f"unknown {key} {value!r}: choose one of {options}")


def check_search_overrides(argv: list[str] | None = None) -> None:
    """Reject a misspelt or mistyped ``search.*`` override in one line, against the schema of the search node.

    Hydra rejects them too, but in several lines; the schema (falsr.search.settings.SearchConfig) is where every
    search key and its type is defined. The toolbox entries are free-form (any DEAP operator's arguments).
    """
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a.startswith("search.") and "=" in a
            and not a.startswith("search.toolbox.")]
    if not args:
        return
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from falsr.search.settings import SearchConfig

    for arg in args:
        key, _, value = arg.partition("=")
        try:
            OmegaConf.merge(OmegaConf.structured(SearchConfig), OmegaConf.from_dotlist([f"{key[7:]}={value}"]))
        except OmegaConfBaseException as err:
            reason = str(err).splitlines()[0]
            fail(f"{arg}: {reason} (every search key, its type and default: falsr.search.settings)")


def check_space_overrides(argv: list[str] | None = None) -> None:
    """Reject a ``space.<key>`` override the search space does not have, in one line (Hydra's error takes five)."""
    from falsr.space.genome import SearchSpace

    keys = set(SearchSpace.__dataclass_fields__)
    for arg in sys.argv[1:] if argv is None else argv:
        key = arg.lstrip("+~").partition("=")[0]
        if key.startswith("space.") and key[6:].split(".")[0] not in keys:
            fail(f"unknown key {key}: the search space (conf/space/falsr.yaml) has {', '.join(sorted(keys))}")


def check_conf_dir() -> str:
    if not (CONF_DIR / "model").is_dir():
        sys.exit(f"error: config folder {CONF_DIR} not found: install the project from its repository with "
                 "`pip install -e .` (or set FALSR_CONF_DIR to the repository's conf/ folder)")
    check_group_choices()
    check_search_overrides()
    check_space_overrides()
    return str(CONF_DIR)
