"""What the search optimises: PSNR and the configured costs (``search.objectives``, the paper's by default).

The objective vector of a candidate is (PSNR, *costs) in the configured order of the costs: PSNR maximised,
every cost minimised. ``latency`` is the network's predicted milliseconds from the lookup table of
``search.latency`` (:mod:`falsr.latency.table`): read, never measured, inside the search. The configured
objectives are process-wide, like the search space (:func:`falsr.space.genome.set_space`): the sweeper sets them
once, and selection, crowding, hypervolume, the predictor, the controller and the reports all read them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from falsr.errors import UserError

CHOICES = ("psnr", "mult_adds", "params", "latency")
COSTS = CHOICES[1:]
PAPER = ("psnr", "mult_adds", "params")
LABELS = {"psnr": "PSNR (dB)", "mult_adds": "mult-adds", "params": "params", "latency": "latency (ms)"}
RECORD_KEYS = {"psnr": "psnr", "mult_adds": "mult_adds", "params": "params", "latency": "latency_ms"}


class ObjectiveError(UserError):
    """A bad ``search.objectives`` (the message names the choices)."""


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """The objectives as (psnr, *costs); a one-line error for an unknown, repeated or missing one."""
    names = [str(n) for n in (names or ())]
    shown = "[" + ",".join(names) + "]"
    if unknown := [n for n in names if n not in CHOICES]:
        raise ObjectiveError(
            f"search.objectives={shown}: unknown objective {unknown[0]!r}: choose from "
            f"{', '.join(CHOICES)}, e.g. search.objectives=[psnr,latency]"
        )
    if len(set(names)) != len(names):
        raise ObjectiveError(f"search.objectives={shown}: an objective is repeated; give each once")
    if "psnr" not in names or len(names) < 2:
        raise ObjectiveError(
            f"search.objectives={shown}: give psnr and at least one cost of "
            f"{', '.join(COSTS)}, e.g. search.objectives=[psnr,latency]"
        )
    return ("psnr", *[n for n in names if n != "psnr"])


@dataclass(frozen=True)
class Objectives:
    """The configured objectives and, where ``latency`` is one, the latency settings its table is read with."""

    names: tuple = PAPER
    latency: object | None = field(default=None, compare=False)  # falsr.latency.LatencySettings

    @property
    def costs(self) -> tuple[str, ...]:
        return self.names[1:]

    def index(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def latency_ms(self, genome) -> float:
        from falsr.latency.table import load_table

        return load_table(self._latency()).predict(genome)

    def latency_settings(self):
        """The settings the latency table is read with, and the final front measured with (``search.latency``; the
        defaults where none was given)."""
        return self._latency()

    def _latency(self):
        if self.latency is None:
            from falsr.latency import LatencySettings

            object.__setattr__(self, "latency", LatencySettings())
        return self.latency

    def cost_values(self, genome, settings) -> dict:
        """Every configured cost of a genome (mult-adds at the search's scale and lr_size, params, latency from the
        table); `settings`: the search's SearchSettings."""

        cost = settings.cost(genome)
        out = {"mult_adds": float(cost.mult_adds), "params": float(cost.params)}
        if "latency" in self.names:
            out["latency"] = float(self.latency_ms(genome))
        return out

    def vector(self, psnr: float, costs: dict) -> tuple[float, ...]:
        return (float(psnr), *[float(costs[n]) for n in self.costs])

    def of_record(self, record) -> dict:
        """The cost values of a journal record (``JournalRecord``); the latency from the table where the record
        has none."""
        out = {n: getattr(record, RECORD_KEYS[n]) for n in self.costs}
        if "latency" in out and out["latency"] is None and record.genome:
            out["latency"] = self.latency_ms(record.genome)
        return out

    def record_vector(self, record, psnr: float | None = None) -> tuple[float, ...]:
        costs = self.of_record(record)
        return (float(record.psnr if psnr is None else psnr), *[float(costs[n]) for n in self.costs])

    def check_table(self, space=None, needed: bool = False) -> None:
        """With latency an objective (or `needed`: a latency constraint): its table must hold every part of the
        space, or a one-line error naming the command that builds it."""
        if "latency" in self.names or needed:
            from falsr.latency.table import table_for

            table_for(self._latency(), space)


def from_config(search) -> Objectives:
    """The Objectives of a ``search`` node (``objectives``, ``latency``)."""
    names = check_names(list(search.get("objectives") or PAPER))
    latency = None
    if "latency" in names or search.get("latency"):
        from falsr.latency import LatencySettings

        node = search.get("latency")
        if hasattr(node, "_get_node"):
            from omegaconf import OmegaConf

            node = OmegaConf.to_container(node, resolve=True)
        latency = LatencySettings.from_dict(node or {})
    return Objectives(names, latency)


_active = Objectives()


def active_objectives() -> Objectives:
    return _active


def set_objectives(objectives: Objectives | None) -> Objectives:
    """Make `objectives` (None: the paper's) the process's; returns the previous ones."""
    global _active
    previous, _active = _active, objectives or Objectives()
    return previous


@contextlib.contextmanager
def using_objectives(objectives: Objectives):
    previous = set_objectives(objectives)
    try:
        yield objectives
    finally:
        set_objectives(previous)


def log_scaled(values: Sequence[float]) -> tuple[float, ...]:
    """(PSNR, ln cost, ...): distances in which halving a cost counts the same everywhere."""
    return (values[0], *[math.log(max(v, 1e-12)) for v in values[1:]])
