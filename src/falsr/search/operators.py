"""The search's variation operators in DEAP's form, and the adapter that shows a genome to DEAP.

**Adapter.** DEAP's operators work on sequences in place. :class:`GeneList` is a genome as one flat
list: the n cell indices (0..191), then the n(n+1)/2 connection bits grouped by source node, in the
genome's own order. :func:`to_genome` turns any such list back into a validated :class:`Genome`
(the search then keeps its canonical form). So DEAP's ``cxTwoPoint``, ``cxUniform`` or
``mutUniformInt`` can be registered as they are, and an operator meant for bits (``mutFlipBit``) is
given only the connection bits by the toolbox entry's ``genes: connections`` (see
:mod:`falsr.search.toolbox`).

**Conventions** (DEAP's): crossovers take two individuals and return both, changed in place;
mutations take one and return a 1-tuple; every random number comes from Python's global ``random``,
which the search seeds from ``search.seed``, swaps in while its operators run and checkpoints (see
:mod:`falsr.search.generation`). Operators of this module that need the running search (its settings
and RL controller) take it as the keyword ``search``; the toolbox binds it.

**The paper's operators, as read here** (the defaults of the search schema, falsr.search.settings):

* initialisation (:func:`init_single_cell`): each model one cell repeated n times, all models with
  different cells, and a categorical draw of its connections (random bits p_r, all ones p_den, else none);
* crossover (:func:`cx_eq4`): the paper's Eq. 4 as written, see there; the former prefix/suffix
  crossover is kept as :func:`cx_one_point`;
* mutation (:func:`mut_hybrid`): exploitation (a controller sample) or exploration, which is the
  paper's categorical choice: random mutation (p_mr), roulette wheel by mult-adds (p_mf) or by params;
  with other ``search.objectives`` the wheels follow the configured costs (:func:`roulette_branches`);
* roulette wheel (:func:`mut_roulette`): over the operator set S (the 192 cell choices), each weighted
  by its log-scaled cost (mult-adds, params or the latency table's milliseconds), see :func:`wheel_weights`.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Sequence

from falsr.space.cost import DEFAULT_LR_SIZE, genome_cost
from falsr.space.genome import (
    DEFAULT_SCALE,
    Genome,
    GenomeError,
    SearchSpace,
    active_space,
    group_starts,
    num_connection_bits,
)


@functools.cache
def canonical_cells(space: SearchSpace) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The space's cell indices whose network is distinct from every other's (one-repeat cells ignore the
    residual flag: 32 of the paper's 192 choices duplicate another one), then the redundant ones."""
    distinct = tuple(i for i, c in enumerate(space.choices) if space.index.get(c.canonical(), i) == i)
    return distinct, tuple(sorted(set(range(space.num_choices)) - set(distinct)))


# -- the adapter -----------------------------------------------------------------------------------------


def n_cells_of(length: int) -> int:
    """n from the length n + n(n+1)/2 of a flat gene list (GenomeError if no n fits)."""
    n = int((math.isqrt(9 + 8 * length) - 3) // 2)
    if n < 1 or n + num_connection_bits(n) != length:
        raise GenomeError(f"a gene list of length {length} is not n cells + n(n+1)/2 bits for any n")
    return n


class GeneList(list):
    """A genome as DEAP's operators expect it: ``cells + connections`` as one list of ints.

    ``origin`` and ``sampled`` are set by this project's mutations: the operator's name for the journal,
    and the controller's actions when the mutation was a controller sample (the controller learns from
    exactly these, see :func:`mut_hybrid`).
    """

    def __init__(self, genes: Sequence[int] = ()):
        super().__init__(genes)
        self.origin: str | None = None
        self.sampled: dict | None = None

    @classmethod
    def from_genome(cls, genome: Genome) -> GeneList:
        return cls(genome.cells + genome.connections)

    @property
    def n_cells(self) -> int:
        return n_cells_of(len(self))


def to_genome(genes) -> Genome:
    """A validated Genome from a Genome or a flat gene list (GenomeError, one line, if it is not one)."""
    if isinstance(genes, Genome):
        return genes
    genes = list(genes)
    n = n_cells_of(len(genes))
    return Genome(tuple(genes[:n]), tuple(genes[n:]))


def as_gene_list(genes) -> GeneList:
    """``genes`` itself if it is a GeneList, else a GeneList of its values."""
    if isinstance(genes, GeneList):
        return genes
    return GeneList.from_genome(genes) if isinstance(genes, Genome) else GeneList(genes)


def _check_pair(a: Sequence[int], b: Sequence[int]) -> int:
    if len(a) != len(b):
        raise GenomeError(f"crossover needs parents of equal length, got {len(a)} and {len(b)} genes")
    return n_cells_of(len(a))


# -- initialisation (toolbox.population) ----------------------------------------------------------------


def initial_connections(n_cells: int, p_random: float, p_dense: float) -> tuple[int, ...]:
    """Categorical draw of a connection pattern: random bits (p_random), all ones (p_dense), else none."""
    bits = num_connection_bits(n_cells)
    u = random.random()
    if u < p_random:
        return tuple(random.randint(0, 1) for _ in range(bits))  # uniform over all 2^bits patterns
    if u < p_random + p_dense:
        return (1,) * bits
    return (0,) * bits


def initial_cells(population_size: int) -> list[int]:
    """One cell choice per model, all different while the population allows it.

    Models first get the space's network-distinct cells in random order (160 in the paper's space), then the
    redundant choices (one-repeat cells differing only in the no-op residual flag; 32), so up to 192 models all
    have different cell indices and up to 160 all differ as networks. Larger populations start again with a
    fresh shuffle, so cells repeat across models only then, each at most ceil(N / 192) times.
    """
    cells: list[int] = []
    while len(cells) < population_size:
        distinct, redundant = map(list, canonical_cells(active_space()))
        random.shuffle(distinct)
        random.shuffle(redundant)
        cells.extend(distinct + redundant)
    return cells[:population_size]


def init_single_cell(k: int, *, search) -> list[Genome]:
    """The paper's first generation: k models, each a random cell repeated n times (all models with
    different cells), with a categorical draw of its connections (p_r random bits, p_den all ones, else none)."""
    s = search.settings
    return [
        Genome(
            (cell,) * s.n_cells, initial_connections(s.n_cells, s.p_init_random_connections, s.p_init_dense_connections)
        )
        for cell in initial_cells(k)
    ]


def init_uniform(k: int, *, search) -> list[Genome]:
    """k uniformly random genomes (uniform cells, uniform bits): the random-search baseline."""
    return [Genome.random(search.settings.n_cells, random) for _ in range(k)]


# -- crossover (toolbox.mate) ------------------------------------------------------------------------------


def cx_eq4(a: list, b: list) -> tuple[list, list]:
    """The paper's Eq. 4, as written: child C is parent A with one cell gene x_i and one connection
    group c_j^{j+1..n} taken from parent B.

    i (the cell) and j (the source node whose outgoing connection bits form the group) are drawn
    uniformly and independently from 0..n-1. DEAP's ``mate`` returns two children: ``a`` becomes C and
    ``b`` becomes Eq. 4 with the roles swapped at the same i and j (B with x_i and c_j from A), so the
    pair exchanges exactly one cell and one group. Both are changed in place.
    """
    n = _check_pair(a, b)
    i = random.randrange(n)
    j = random.randrange(n)
    a[i], b[i] = b[i], a[i]
    starts = group_starts(n)
    lo, hi = n + starts[j], n + starts[j + 1]
    a[lo:hi], b[lo:hi] = b[lo:hi], a[lo:hi]
    return a, b


def cx_one_point(a: list, b: list) -> tuple[list, list]:
    """One-point crossover on the micro and the macro genes at once (a named option, not the paper's Eq. 4).

    One cut i in 1..n-1 between cells and one cut j in 1..n-1 between whole source-node groups
    c_j^{j+1..n} of the connection bits; the children take a's genes before the cuts and b's after (and
    vice versa). Cutting only between groups keeps every node's outgoing connections together.
    """
    n = _check_pair(a, b)
    if n < 2:
        return a, b
    i = random.randint(1, n - 1)
    j = n + group_starts(n)[random.randint(1, n - 1)]
    a[i:n], b[i:n] = b[i:n], a[i:n]
    a[j:], b[j:] = b[j:], a[j:]
    return a, b


# -- mutation (toolbox.mutate) -----------------------------------------------------------------------------


def _random_mutation(ind: GeneList, cell_probability: float, bit_probability: float) -> None:
    n = ind.n_cells
    for k in range(n):
        if random.random() < cell_probability:
            ind[k] = random.choice([c for c in range(active_space().num_choices) if c != ind[k]])
    for k in range(n, len(ind)):
        if random.random() < bit_probability:
            ind[k] = 1 - ind[k]


def mut_random(ind: GeneList, *, search) -> tuple[GeneList]:
    """Random mutation: each cell redrawn uniformly (another choice) with probability
    ``random_mutation_cell_probability`` (1/n), each bit flipped with ``random_mutation_bit_probability``
    (1/(n(n+1)/2))."""
    ind = as_gene_list(ind)
    _random_mutation(ind, search.settings.cell_mutation_probability, search.settings.bit_mutation_probability)
    ind.origin = "mutation_random"
    return (ind,)


def cell_costs(
    n_cells: int, lr_size: tuple[int, int] = DEFAULT_LR_SIZE, scale: int = DEFAULT_SCALE
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mult-adds, params) of each cell choice of the active space, as the analytic cost of a model made of that
    cell repeated n times with chain connections only. Cached: computed once per (space, n, lr_size, scale)."""
    return _cell_costs(active_space(), n_cells, tuple(lr_size), scale)


@functools.cache
def _cell_costs(space: SearchSpace, n_cells: int, lr_size: tuple[int, int], scale: int = DEFAULT_SCALE):
    costs = [
        genome_cost(Genome((c,) * n_cells, (0,) * num_connection_bits(n_cells)), lr_size, scale)
        for c in range(space.num_choices)
    ]
    return tuple(float(c.mult_adds) for c in costs), tuple(float(c.params) for c in costs)


def wheel_weights(costs: Sequence[float], pressure: float) -> tuple[float, ...]:
    """Roulette-wheel weights over the cell choices from their log-scaled costs: exp(-pressure * u).

    u = ln(cost / cost_min) / ln(cost_max / cost_min) puts each cell's cost on a log scale from 0 (the
    cheapest) to 1 (the dearest), so the weight falls by the same factor for every doubling of the cost
    and the dearest cell is drawn exp(pressure) times less often than the cheapest (pressure 0: uniform).
    Why this and not the former 1 + ln(max / cost): that fitness gives almost no selection pressure, the
    cheapest 10% of the 192 cells got 14.3% of the wheel against 9.9% for a uniform draw (1.44x); with
    pressure 4 (the default) they get 27.3% (2.76x, for mult-adds and for params alike), while the
    dearest cells keep a weight of e^-4 = 1.8% of the cheapest's. :func:`wheel_pressure` measures it.
    """
    lo, hi = math.log(min(costs)), math.log(max(costs))
    span = hi - lo or 1.0
    return tuple(math.exp(-pressure * (math.log(c) - lo) / span) for c in costs)


def roulette_wheel(
    n_cells: int,
    metric: str,
    pressure: float = 4.0,
    lr_size: tuple[int, int] = DEFAULT_LR_SIZE,
    scale: int = DEFAULT_SCALE,
    latency=None,
) -> tuple[float, ...]:
    """Cumulative roulette-wheel weights over the active space's cells for 'mult_adds', 'params' or 'latency'
    (cached). 'latency': the lookup table of `latency` (LatencySettings; None: the search objectives'
    ``search.latency``), a cell weighted by :func:`falsr.latency.table.cell_latencies`."""
    if metric == "latency":
        from falsr.latency.table import load_table
        from falsr.search.objectives import active_objectives

        settings = latency if latency is not None else active_objectives().latency_settings()
        return _latency_wheel(active_space(), n_cells, float(pressure), load_table(settings))
    return _roulette_wheel(active_space(), n_cells, metric, float(pressure), tuple(lr_size), scale)


@functools.lru_cache(maxsize=16)
def _latency_wheel(space: SearchSpace, n_cells: int, pressure: float, table):
    """Keyed by the table object: load_table gives a new one when the file changes."""
    from falsr.latency.table import cell_latencies

    return tuple(itertools.accumulate(wheel_weights(cell_latencies(table, n_cells, space), pressure)))


@functools.cache
def _roulette_wheel(
    space: SearchSpace, n_cells: int, metric: str, pressure: float, lr_size: tuple[int, int], scale: int = DEFAULT_SCALE
):
    mult_adds, params = _cell_costs(space, n_cells, lr_size, scale)
    costs = {"mult_adds": mult_adds, "params": params}[metric]
    return tuple(itertools.accumulate(wheel_weights(costs, pressure)))


def wheel_pressure(
    n_cells: int, metric: str, pressure: float, lr_size: tuple[int, int] = DEFAULT_LR_SIZE, share: float = 0.1
) -> tuple[float, float]:
    """The selection pressure the wheel really gives: (probability mass on the cheapest ``share`` of the
    192 cells, that mass divided by the uniform draw's)."""
    costs = cell_costs(n_cells, tuple(lr_size))[{"mult_adds": 0, "params": 1}[metric]]
    weights = wheel_weights(costs, pressure)
    num = len(costs)
    k = round(share * num)
    cheapest = sorted(range(num), key=lambda c: (costs[c], c))[:k]
    mass = sum(weights[c] for c in cheapest) / sum(weights)
    return mass, mass / (k / num)


def mut_roulette(ind: GeneList, *, search, metric: str = "mult_adds") -> tuple[GeneList]:
    """Roulette-wheel selection on the micro genes: all n cells redrawn from the wheel over the 192
    choices weighted by log-scaled ``metric`` ('mult_adds', 'params' or 'latency': the table of the search's
    objectives, see :func:`wheel_weights`, :func:`roulette_wheel`); the connections are kept."""
    ind = as_gene_list(ind)
    s = search.settings
    n = ind.n_cells
    cum = roulette_wheel(n, metric, float(s.roulette_pressure), tuple(s.lr_size), s.scale)
    ind[:n] = random.choices(range(len(cum)), cum_weights=cum, k=n)
    ind.origin = f"roulette_{metric}"
    return (ind,)


ROULETTE_METRICS = ("mult_adds", "params", "latency")


def roulette_branches(costs: Sequence[str], p_random: float, p_mult_adds: float) -> tuple[tuple[str, float], ...]:
    """The roulette wheels of exploration for the configured cost objectives `costs`: (metric, the upper end of its
    interval of the draw p) in draw order; the interval [0, p_random) is random mutation.

    The wheels draw over exactly the configured costs, so the roulette pushes towards what the search minimises:
    mult-adds, when it is an objective, keeps its interval [p_mr, p_mr + p_mf); the rest of [p_mr, 1) is split
    evenly among the other configured costs, in the order params, latency; mult-adds alone takes all of
    [p_mr, 1), and without mult-adds all of [p_mr, 1) is split evenly. So the paper's [psnr, mult_adds, params]
    draws as before (mult-adds for p_mr <= p < p_mr + p_mf, params above), [psnr, latency] draws every wheel by
    latency, [psnr, mult_adds, latency] replaces the params wheel by latency, and [psnr, mult_adds, params,
    latency] splits the params share between params and latency."""
    configured = [m for m in ROULETTE_METRICS if m in costs]
    if not configured:
        raise ValueError(f"no roulette metric among the objectives' costs {list(costs)}")
    branches, low = [], p_random
    others = [m for m in configured if m != "mult_adds"]
    if "mult_adds" in configured:
        if not others:
            return (("mult_adds", 1.0),)
        low = p_random + p_mult_adds
        branches.append(("mult_adds", low))
    width = (1.0 - low) / len(others)
    branches += [(m, low + (k + 1) * width) for k, m in enumerate(others)]
    branches[-1] = (branches[-1][0], 1.0)  # the last wheel ends at 1 exactly, whatever the rounding
    return tuple(branches)


def mut_explore(ind: GeneList, *, search) -> tuple[GeneList]:
    """Exploration, the paper's categorical choice (its Eq. 5 is missing from its text; this is the
    reading): one draw p in [0, 1); random mutation for p < p_mr, then a roulette wheel by the cost objective
    whose interval holds p (:func:`roulette_branches`; the paper's objectives: by mult-adds for
    p_mr <= p < p_mr + p_mf, by params otherwise)."""
    from falsr.search.objectives import active_objectives

    s = search.settings
    p = random.random()
    if p < s.p_random_mutation:
        return mut_random(ind, search=search)
    branches = roulette_branches(active_objectives().costs, s.p_random_mutation, s.p_roulette_mult_adds)
    metric = next((m for m, upper in branches if p < upper), branches[-1][0])
    return mut_roulette(ind, search=search, metric=metric)


def mut_controller(ind: GeneList, *, search) -> tuple[GeneList]:
    """Exploitation: the child replaced by a sample of the RL controller (its cells and connections), or,
    with ``controller_keeps_cells``, the child's cells kept and only the connections drawn given them.

    The sampled actions are stored on the result as drawn (``ind.sampled``), before the search makes
    the genome canonical, so the controller is later reinforced for exactly what it chose.
    """
    ind = as_gene_list(ind)
    controller = search.controller
    n = ind.n_cells
    if search.settings.controller_keeps_cells:
        cells = tuple(ind[:n])
        sample = controller.sample_connections(cells)
        ind[n:] = sample.connections
        ind.sampled = {"cells": list(cells), "connections": list(sample.connections), "connections_only": True}
        ind.origin = "controller_connections"
    else:
        sample = controller.sample(1)[0]
        ind[:] = sample.cells + sample.connections
        ind.sampled = {"cells": list(sample.cells), "connections": list(sample.connections), "connections_only": False}
        ind.origin = "controller"
    return (ind,)


def mut_hybrid(ind: GeneList, *, search) -> tuple[GeneList]:
    """The paper's hybrid mutation: exploration (:func:`mut_explore`) with probability ``p_exploration``
    or always when there is no controller (plain NSGA-II), else exploitation (:func:`mut_controller`)."""
    if search.controller is None or random.random() < search.settings.p_exploration:
        return mut_explore(ind, search=search)
    return mut_controller(ind, search=search)


def mut_uniform(ind: GeneList, *, search) -> tuple[GeneList]:
    """The child replaced by a uniformly random genome (uniform cells and bits): the random-search baseline."""
    ind = as_gene_list(ind)
    genome = Genome.random(search.settings.n_cells, random)
    ind[:] = genome.cells + genome.connections
    ind.origin = "uniform"
    return (ind,)
