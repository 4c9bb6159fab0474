"""NSGA-II selection for FALSR: objectives, constrained domination, crowding, tournaments, hypervolume.

Objectives are (PSNR, mult-adds, params) with weights (+1, -1, -1) by default: PSNR is maximised, the two costs
minimised; ``search.objectives`` chooses the costs (falsr.search.objectives), e.g. (PSNR, latency). DEAP's machinery does the work (``sortNondominated``, ``assignCrowdingDist``, the
``moocore`` hypervolume behind ``deap.benchmarks.tools.hypervolume``); the fitness and individual
classes are defined here at module scope (not through ``deap.creator``) so they pickle by import path
in any process, e.g. a Hydra launcher's worker, without a ``creator.create`` having run there first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import numpy as np
from deap import base
from deap.benchmarks.tools import hypervolume as deap_hypervolume
from deap.tools import emo

from falsr.search.settings import Constraints, HypervolumeBox
from falsr.space.genome import Genome

OBJECTIVES = ("psnr", "mult_adds", "params")
# Multi-fidelity (falsr.search.fidelity): the PSNR objective of a model whose best measurement is at rung r is
# psnr + r * RUNG_SPACING, so NSGA-II compares (rung, psnr) lexicographically; far above any PSNR in dB.
RUNG_SPACING = 1000.0


def tiered_psnr(psnr: float, rung: int = 0) -> float:
    """The PSNR objective of a model measured at ``rung`` (0: single fidelity, the plain PSNR).

    Why lexicographic: PSNRs after different training lengths are not comparable (a longer run is higher
    for every architecture), so a model measured at a higher rung wins the PSNR comparison against any model
    of a lower rung, and two models of the same rung compare by PSNR. Promotion already chose the higher-rung
    models as their rung's best; the costs still decide domination alongside it.
    """
    return float(psnr) + RUNG_SPACING * int(rung)


def rung_and_psnr(value: float) -> tuple[int, float]:
    """The inverse of :func:`tiered_psnr`: (rung, PSNR in dB)."""
    rung = int(value // RUNG_SPACING) if value >= RUNG_SPACING else 0
    return rung, value - RUNG_SPACING * rung


def constraint_violation(values: Sequence[float], constraints: Constraints | None) -> float:
    """Total normalised violation (0 when feasible), each constraint relative to its bound (Deb 2000).

    A PSNR shortfall counts as (min_psnr - psnr) / min_psnr, an excess of mult-adds as (mult_adds - max) / max
    and a shortfall as (min - mult_adds) / min, so all are dimensionless and comparable. The PSNR is the one
    measured at the model's rung (:func:`tiered_psnr`).
    """
    if constraints is None or not values:
        return 0.0
    from falsr.search.objectives import active_objectives

    objectives = active_objectives()
    psnr = rung_and_psnr(values[0])[1]
    total = 0.0
    if constraints.min_psnr is not None and psnr < constraints.min_psnr:
        total += (constraints.min_psnr - psnr) / abs(constraints.min_psnr)
    # A cost constraint on a cost that is not an objective is enforced before training only (never trained).
    if (m := objectives.index("mult_adds")) is not None and m < len(values):
        mult_adds = values[m]
        if constraints.max_mult_adds is not None and mult_adds > constraints.max_mult_adds:
            total += (mult_adds - constraints.max_mult_adds) / constraints.max_mult_adds
        low = getattr(constraints, "min_mult_adds", None)
        if low is not None and mult_adds < low:
            total += (low - mult_adds) / low
    cap = getattr(constraints, "max_latency_ms", None)
    if cap is not None and (m := objectives.index("latency")) is not None and m < len(values) and values[m] > cap:
        total += (values[m] - cap) / cap
    return total


class SRFitness(base.Fitness):
    """(PSNR, mult-adds, params) with Deb's constrained domination.

    A feasible model dominates every infeasible one; of two infeasible models the one with the smaller
    total violation dominates; two feasible models compare by plain Pareto domination. DEAP's
    ``sortNondominated`` calls ``dominates``, so the constraint handling reaches every ranking here.
    """

    weights = (1.0, -1.0, -1.0)

    def __init__(self, values=(), constraints: Constraints | None = None):
        super().__init__(values)
        self.constraints = constraints
        self.rank: int | None = None  # 0 = first front, set by `assign_rank_and_crowding`
        self.crowding_dist: float = 0.0

    @property
    def violation(self) -> float:
        return constraint_violation(self.values, self.constraints)

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0

    def setValues(self, values):
        if len(values) != len(self.weights):  # other objectives (search.objectives): PSNR maximised, costs minimised
            self.weights = (1.0,) + (-1.0,) * (len(values) - 1)
        super().setValues(values)

    values = property(base.Fitness.getValues, setValues, base.Fitness.delValues)

    def dominates(self, other, obj=slice(None)):
        mine, theirs = self.violation, other.violation
        if mine > 0.0 or theirs > 0.0:
            return mine < theirs
        return super().dominates(other, obj)

    def __deepcopy__(self, memo):
        copy_ = self.__class__(constraints=self.constraints)
        copy_.weights = self.weights
        copy_.wvalues = self.wvalues
        copy_.rank, copy_.crowding_dist = self.rank, self.crowding_dist
        return copy_


class Individual:
    """An evaluated (or to-be-evaluated) genome; DEAP's selection code reads ``.fitness``.

    ``origin`` records which operators made it: "init", "random" (a duplicate replaced) or
    "<mate or copy>+<mutation>", e.g. "cx_eq4+roulette_mult_adds" or "cxTwoPoint+mutFlipBit".
    """

    __slots__ = ("genome", "fitness", "origin")

    def __init__(
        self,
        genome: Genome,
        objectives: Sequence[float] | None = None,
        constraints: Constraints | None = None,
        origin: str = "init",
    ):
        self.genome = genome
        self.fitness = SRFitness(tuple(objectives) if objectives is not None else (), constraints)
        self.origin = origin

    @property
    def objectives(self) -> tuple[float, ...]:
        return self.fitness.values

    def __getstate__(self):
        return {"genome": self.genome, "fitness": self.fitness, "origin": self.origin}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"Individual({self.genome}, {self.objectives}, origin={self.origin!r})"

    def to_dict(self) -> dict:
        return {"genome": self.genome.to_string(), "objectives": list(self.objectives), "origin": self.origin}

    @classmethod
    def from_dict(cls, data: dict, constraints: Constraints | None = None) -> Individual:
        return cls(Genome.from_string(data["genome"]), data["objectives"], constraints, data.get("origin", "init"))


# -- ranking and crowding -----------------------------------------------------------------------------


def nondominated_fronts(individuals: Sequence[Individual]) -> list[list[Individual]]:
    """All fronts, best first, by DEAP's fast non-dominated sort (with constrained domination)."""
    if not individuals:
        return []
    return emo.sortNondominated(list(individuals), len(individuals))


def improved_crowding_distance(front: Sequence[Individual]) -> list[float]:
    """Chu & Yu 2018 (arXiv 1811.12667): one-sided crowding distance.

    With every objective turned into minimisation and the front sorted ascending in it, Deb's distance
    adds (f[i+1] - f[i-1]) / (f_max - f_min), which is the same for every point inside the cuboid of its
    two neighbours. The improved distance adds (f[i+1] - f[i]) / (f_max - f_min): the gap to the next
    *worse* neighbour only, so within that cuboid a point nearer the Pareto front (smaller in every
    objective) gets a larger distance and is preferred. Boundary points stay infinite, as in Deb's.
    """
    n = len(front)
    distances = [0.0] * n
    if n == 0:
        return distances
    nobj = len(front[0].fitness.wvalues)
    for m in range(nobj):
        order = sorted(range(n), key=lambda k: -front[k].fitness.wvalues[m])  # ascending in minimisation form
        values = [-front[k].fitness.wvalues[m] for k in order]
        distances[order[0]] = distances[order[-1]] = math.inf
        span = values[-1] - values[0]
        if span == 0:
            continue
        for pos in range(1, n - 1):
            distances[order[pos]] += (values[pos + 1] - values[pos]) / span
    return distances


def assign_crowding(front: Sequence[Individual], mode: str = "improved") -> None:
    """Set ``fitness.crowding_dist`` on every member of one front."""
    if mode == "standard":
        emo.assignCrowdingDist(front)  # Deb's distance (DEAP scales it by 1/n_objectives: same order)
    elif mode == "improved":
        for ind, dist in zip(front, improved_crowding_distance(front)):
            ind.fitness.crowding_dist = dist
    else:
        raise ValueError(f"crowding={mode!r}: use 'standard' or 'improved'")


def assign_rank_and_crowding(individuals: Sequence[Individual], mode: str = "improved") -> list[list[Individual]]:
    """Rank (0 = first front) and crowding distance for everyone; returns the fronts."""
    fronts = nondominated_fronts(individuals)
    for rank, front in enumerate(fronts):
        for ind in front:
            ind.fitness.rank = rank
        assign_crowding(front, mode)
    return fronts


# -- selection -----------------------------------------------------------------------------------------


def crowded_better(a: Individual, b: Individual) -> Individual | None:
    """The crowded-comparison winner: lower rank, then larger crowding distance; None on a tie."""
    ra, rb = a.fitness.rank, b.fitness.rank
    if ra != rb:
        return a if ra < rb else b
    ca, cb = a.fitness.crowding_dist, b.fitness.crowding_dist
    if ca != cb:
        return a if ca > cb else b
    return None


def sel_crowded_tournament(individuals: Sequence[Individual], k: int, *, search=None) -> list[Individual]:
    """Parent selection (``toolbox.select``): k binary tournaments on (rank, crowding distance).

    Ranks and crowding distances (``search.settings.crowding``, improved by default) are computed
    here on ``individuals``; each tournament draws two different individuals with the global
    ``random`` and keeps the crowded-comparison winner, a coin flip on a tie.
    """
    individuals = list(individuals)
    assign_rank_and_crowding(individuals, search.settings.crowding if search is not None else "improved")
    chosen = []
    for _ in range(k):
        a, b = random.sample(individuals, 2) if len(individuals) > 1 else (individuals[0], individuals[0])
        winner = crowded_better(a, b)
        chosen.append(winner if winner is not None else (a if random.random() < 0.5 else b))
    return chosen


def select_survivors(individuals: Sequence[Individual], mu: int, crowding: str = "improved") -> list[Individual]:
    """NSGA-II environmental selection: whole fronts while they fit, the last one by crowding distance.

    Leaves rank and crowding distance (computed per front of the union) on the survivors, ready for
    the next generation's tournaments.
    """
    fronts = assign_rank_and_crowding(individuals, crowding)
    survivors: list[Individual] = []
    for front in fronts:
        if len(survivors) + len(front) <= mu:
            survivors.extend(front)
            continue
        room = mu - len(survivors)
        order = sorted(range(len(front)), key=lambda k: -front[k].fitness.crowding_dist)  # stable on ties
        survivors.extend(front[k] for k in order[:room])
        break
    return survivors


def sel_nsga2(individuals: Sequence[Individual], k: int, *, search=None) -> list[Individual]:
    """Survival (``toolbox.survive``): NSGA-II's environmental selection with constrained domination and the
    crowding distance of ``search.settings.crowding`` (the improved one of Chu & Yu 2018 by default);
    :func:`select_survivors`."""
    return select_survivors(individuals, k, search.settings.crowding if search is not None else "improved")


class _LogCostFitness(SRFitness):
    """(PSNR, ln cost, ...) with the constraint violation of the individual it stands for."""

    def __init__(self, values=(), violation: float = 0.0, constraints=None):
        super().__init__(values)
        self._violation = violation

    @property
    def violation(self) -> float:
        return self._violation


class _LogCostView:
    __slots__ = ("fitness", "of")

    def __init__(self, ind: Individual):
        psnr, *costs = ind.objectives
        self.fitness = _LogCostFitness((psnr, *[math.log(max(c, 1e-12)) for c in costs]), ind.fitness.violation)
        self.of = ind


def on_log_costs(individuals: Sequence[Individual], k: int, *, selector) -> list[Individual]:
    """Run a DEAP selector (``selSPEA2``, ``selNSGA3``, ...) on the individuals seen with log-scaled costs.

    The selector sees fitness values (PSNR in dB, ln mult-adds, ln params) with the same weights and
    the same constrained domination (the log changes no domination), so the selectors that measure
    distances in objective space (SPEA2's density, NSGA-III's niching) compare a 1 dB step with a
    factor e in cost instead of being ruled by the raw mult-adds (~1e10). Returns the chosen
    individuals themselves.
    """
    views = [_LogCostView(ind) for ind in individuals]
    return [view.of for view in selector(views, k)]


# -- hypervolume -----------------------------------------------------------------------------------------

# HypervolumeBox (the box's defaults) lives with the other search settings: falsr.search.settings.


class _NormalisedFitness(base.Fitness):
    weights = (-1.0, -1.0, -1.0)

    def __init__(self, values=()):
        self.weights = (-1.0,) * len(values)
        super().__init__(values)


class _Point:
    __slots__ = ("fitness",)

    def __init__(self, values):
        self.fitness = _NormalisedFitness(tuple(values))


def hypervolume(objectives: Iterable[Sequence[float]], box: HypervolumeBox = HypervolumeBox()) -> float:
    """Hypervolume of (psnr, *costs) points (the search's objectives) in ``box`` (DEAP / moocore), in [0, 1].

    Dominated points may be included: they add nothing. Feasibility is not looked at; pass only
    feasible models when constraints apply.
    """
    pts = box.normalise(objectives)
    if len(pts) == 0:
        return 0.0
    return float(deap_hypervolume([_Point(p) for p in pts], ref=np.ones(pts.shape[1])))
