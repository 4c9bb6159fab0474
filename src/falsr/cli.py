"""Shared bits of the Hydra entry points: where the configs live, and one-line user errors.

The top of the package: it calls down into the checks each sub-package keeps for its own overrides, and nothing
below imports it (tests/test_imports.py).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import falsr.space.cost  # noqa: F401 - registers the configs' ${falsr.cost_lr_size:} resolver
from falsr import CONF_DIR
from falsr.errors import exit_on_user_error
from falsr.space.genome import check_space_overrides, set_space, space_from_config

__all__ = ["CONF_DIR", "check_conf_dir", "check_group_choices", "exit_on_user_error", "use_space_of", "user_errors"]


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
    space = space_from_config(cfg.get("space"))
    set_space(space)
    return space


def fail(message: str) -> None:
    """A user mistake found before Hydra composes: `error: <message>` on one line and exit code 2, as in a task."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_group_choices(argv: Sequence[str] | None = None) -> None:
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


def check_conf_dir(argv: Sequence[str] | None = None) -> str:
    """The config folder, after the overrides Hydra would reject in many lines were rejected here in one."""
    if not (CONF_DIR / "model").is_dir():
        sys.exit(
            f"error: config folder {CONF_DIR} not found: install the project from its repository with "
            "`pip install -e .` (or set FALSR_CONF_DIR to the repository's conf/ folder)"
        )
    argv = list(sys.argv[1:] if argv is None else argv)
    check_group_choices(argv)
    with exit_on_user_error():
        if any(arg.startswith("search.") for arg in argv):  # the search package only when it is needed
            from falsr.search.settings import check_search_overrides

            check_search_overrides(argv)
        check_space_overrides(argv)
    return str(CONF_DIR)
