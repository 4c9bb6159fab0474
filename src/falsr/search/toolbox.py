"""The search's ``deap.base.Toolbox``, built from the ``toolbox`` node of the search config.

Every operator the evolutionary loop calls is a toolbox entry, each a Hydra ``_target_`` with
``_partial_: true`` (the loop supplies the individuals):

==============  ================================  ==============================================================
entry           called as                         default (``falsr.search.settings``, the paper's)
==============  ================================  ==============================================================
``population``  ``population(k)`` -> k genomes    :func:`falsr.search.operators.init_single_cell`
``select``      ``select(population, k)``         :func:`falsr.search.nsga.sel_crowded_tournament` (parents)
``mate``        ``mate(a, b)`` -> (a, b)          :func:`falsr.search.operators.cx_eq4`
``mutate``      ``mutate(a)`` -> (a,)             :func:`falsr.search.operators.mut_hybrid`
``survive``     ``survive(individuals, k)``       :func:`falsr.search.nsga.sel_nsga2`
==============  ================================  ==============================================================

Swap one from the command line, DEAP's own operators included, e.g.
``search.toolbox.mate._target_=deap.tools.cxTwoPoint`` or ``search.toolbox.mutate._target_=deap.tools.mutFlipBit
+search.toolbox.mutate.indpb=0.1 search.toolbox.mutate.genes=connections``.

``mate`` and ``mutate`` see a genome through :class:`falsr.search.operators.GeneList` (cells then bits);
their ``genes`` key (``all``, ``cells`` or ``connections``, popped before instantiation) hands the
operator only that part. An operator that takes a keyword ``search`` gets the running search (its
settings and RL controller) bound to it; DEAP's do not have one and get nothing.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

from deap import base

from falsr.errors import UserError
from falsr.search.settings import PAPER_TOOLBOX  # the default toolbox, with the other defaults

ENTRIES = ("population", "select", "mate", "mutate", "survive")
GENE_PARTS = ("all", "cells", "connections")
# How the loop calls each entry: dummy arguments to check a configured operator's signature against.
_CALLS = {"population": (1,), "select": ([], 1), "mate": ([], []), "mutate": ([],), "survive": ([], 1)}


def paper_toolbox() -> dict[str, dict[str, Any]]:
    """A copy of the default toolbox config (the paper's operators), the ``toolbox`` default of the search schema (falsr.search.settings.PAPER_TOOLBOX)."""
    return copy.deepcopy(PAPER_TOOLBOX)


def label(op: Callable) -> str:
    """A short name of an operator for the journal: the function's name (``cx_eq4``, ``cxTwoPoint``)."""
    while True:
        if isinstance(op, functools.partial):
            op = op.func
        elif isinstance(op, OnGenes):
            op = op.operator
        else:
            break
    return getattr(op, "__name__", type(op).__name__)


class OnGenes:
    """Hands an operator only the cells or only the connection bits of each GeneList, in place.

    DEAP's crossovers and mutations change their arguments in place and return them; the part they
    return is written back into the whole genome, so the other part is never touched.
    """

    def __init__(self, operator: Callable, part: str):
        self.operator, self.part = operator, part

    def __call__(self, *individuals):
        parts = []
        for ind in individuals:
            n = ind.n_cells
            parts.append(slice(0, n) if self.part == "cells" else slice(n, None))
        views = [list(ind[sl]) for ind, sl in zip(individuals, parts)]
        out = self.operator(*views)
        for ind, sl, view in zip(individuals, parts, out):
            ind[sl] = list(view)
        return tuple(individuals)


def _takes_search(op: Callable) -> bool:
    try:
        return "search" in inspect.signature(op).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _check_call(name: str, op: Callable, target: str) -> None:
    """A one-line error now, rather than a TypeError deep in the loop, for an operator that cannot be
    called the way the loop calls ``name`` (e.g. ``mutFlipBit`` without its ``indpb``)."""
    try:
        signature = inspect.signature(op)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*_CALLS[name])
    except TypeError as err:
        args = ", ".join(
            ("k" if isinstance(a, int) else ("population" if name in ("select", "survive") else "ind"))
            for a in _CALLS[name]
        )
        raise UserError(f"search.toolbox.{name}: {target} cannot be called as {name}({args}): {err}") from None


def build_toolbox(config: dict, search) -> base.Toolbox:
    """A ``deap.base.Toolbox`` with the five entries of ``config`` (see the module docstring).

    ``search`` is bound to the operators that take it. Mistakes in ``config`` (an unknown or missing
    entry, a target that does not import, arguments the operator does not take) are one-line UserErrors.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    config = dict(config or {})
    unknown = sorted(set(config) - set(ENTRIES))
    if unknown:
        raise UserError(
            f"search.toolbox: unknown entr{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
            f"the entries are {', '.join(ENTRIES)}"
        )
    toolbox = base.Toolbox()
    for name in ENTRIES:
        entry = config.get(name)
        if not isinstance(entry, dict) or "_target_" not in entry:
            raise UserError(
                f"search.toolbox.{name} needs a _target_ (a function such as "
                f"{PAPER_TOOLBOX[name]['_target_']}), got {entry!r}"
            )
        entry = dict(entry)
        target = str(entry["_target_"])
        part = entry.pop("genes", "all")
        if part not in GENE_PARTS or (part != "all" and name not in ("mate", "mutate")):
            raise UserError(
                f"search.toolbox.{name}.genes={part!r}: only mate and mutate take genes, one of {', '.join(GENE_PARTS)}"
            )
        entry.setdefault("_partial_", True)
        try:
            op = instantiate(entry, _convert_="all")
        except InstantiationException as err:
            message = str(err).splitlines()[0].split(", set env var HYDRA_FULL_ERROR")[0]
            raise UserError(f"search.toolbox.{name}: {message}") from None
        except Exception as err:  # noqa: BLE001 - an error raised by the target itself
            raise UserError(
                f"search.toolbox.{name}: cannot make {target}: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}"
            ) from None
        if not callable(op):
            raise UserError(f"search.toolbox.{name}: {target} gave a {type(op).__name__}, not a callable operator")
        if _takes_search(op):
            op = functools.partial(op, search=search)
        _check_call(name, op, target)
        if part != "all":
            op = OnGenes(op, part)
        toolbox.register(name, op)
        getattr(toolbox, name).label = label(op)
    return toolbox


__all__ = ["ENTRIES", "GENE_PARTS", "OnGenes", "PAPER_TOOLBOX", "build_toolbox", "label", "paper_toolbox"]
