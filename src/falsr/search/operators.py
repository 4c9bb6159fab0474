"""Variation operators of the FALSR search: initialisation, Eq. 4 crossover, exploration mutations.

All operators take and return :class:`~falsr.genome.Genome` objects (always valid, since they are
built through its validating constructor) and draw every random number from the ``random.Random``
they are given, so a search is reproducible and resumable. :func:`make_toolbox` registers them in a
DEAP ``base.Toolbox`` (``init_population``, ``mate``, ``mutate_random``, ``mutate_roulette``).
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from typing import Sequence

from deap import base

from falsr.cost import genome_cost
from falsr.genome import CELL_CHOICES, NUM_CHOICES, Genome, group_starts, num_connection_bits
from falsr.search.settings import SearchSettings

# Cell indices whose network is distinct from every other's (one-repeat cells ignore the residual flag,
# so 32 of the 192 choices duplicate another one), then the 32 redundant ones.
CANONICAL_CELLS: tuple[int, ...] = tuple(i for i, c in enumerate(CELL_CHOICES) if c.canonical() == c)
REDUNDANT_CELLS: tuple[int, ...] = tuple(i for i, c in enumerate(CELL_CHOICES) if c.canonical() != c)


# -- initialisation -------------------------------------------------------------------------------------

def initial_connections(n_cells: int, rng: random.Random, p_random: float, p_dense: float) -> tuple[int, ...]:
    """Categorical draw of a connection pattern: random bits (p_random), all ones (p_dense), else none."""
    bits = num_connection_bits(n_cells)
    u = rng.random()
    if u < p_random:
        return tuple(rng.randint(0, 1) for _ in range(bits))  # uniform over all 2^bits patterns
    if u < p_random + p_dense:
        return (1,) * bits
    return (0,) * bits


def initial_cells(population_size: int, rng: random.Random) -> list[int]:
    """One cell choice per model, all different while the population allows it.

    Models first get the 160 network-distinct cells in random order, then the 32 redundant choices
    (one-repeat cells differing only in the no-op residual flag), so up to 192 models all have different
    cell indices and up to 160 all differ as networks. Larger populations start again with a fresh
    shuffle, so cells repeat across models only then, each at most ceil(N / 192) times.
    """
    cells: list[int] = []
    while len(cells) < population_size:
        distinct, redundant = list(CANONICAL_CELLS), list(REDUNDANT_CELLS)
        rng.shuffle(distinct)
        rng.shuffle(redundant)
        cells.extend(distinct + redundant)
    return cells[:population_size]


def init_population(settings: SearchSettings, rng: random.Random) -> list[Genome]:
    """The first generation: each model a random cell repeated n times, with a categorical connection draw."""
    n = settings.n_cells
    return [Genome((cell,) * n, initial_connections(n, rng, settings.p_init_random_connections,
                                                    settings.p_init_dense_connections))
            for cell in initial_cells(settings.population_size, rng)]


# -- crossover (Eq. 4) ----------------------------------------------------------------------------------

def crossover(a: Genome, b: Genome, rng: random.Random) -> tuple[Genome, Genome]:
    """Single-point crossover on the micro and the macro genes at once (the paper's Eq. 4).

    One cut i in 1..n-1 between cells and one cut j in 1..n-1 between whole source-node groups
    c_j^{j+1..n} of the connection bits; children take a's genes before the cuts and b's after (and vice
    versa). Cutting only between groups keeps every node's outgoing connections together.
    """
    n = a.n_cells
    if b.n_cells != n:
        raise ValueError(f"crossover needs parents of equal length, got {n} and {b.n_cells} cells")
    if n < 2:
        return a, b
    i = rng.randint(1, n - 1)
    j = group_starts(n)[rng.randint(1, n - 1)]
    child1 = Genome(a.cells[:i] + b.cells[i:], a.connections[:j] + b.connections[j:])
    child2 = Genome(b.cells[:i] + a.cells[i:], b.connections[:j] + a.connections[j:])
    return child1, child2


# -- exploration mutations -------------------------------------------------------------------------------

def random_mutation(genome: Genome, rng: random.Random, cell_probability: float, bit_probability: float) -> Genome:
    """Each cell is redrawn uniformly (another choice) with ``cell_probability``, each bit flipped with
    ``bit_probability``."""
    cells = tuple(rng.choice([c for c in range(NUM_CHOICES) if c != cell]) if rng.random() < cell_probability
                  else cell for cell in genome.cells)
    bits = tuple(1 - bit if rng.random() < bit_probability else bit for bit in genome.connections)
    return Genome(cells, bits)


@functools.lru_cache(maxsize=None)
def cell_costs(n_cells: int, lr_size: tuple[int, int] = (480, 480)) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mult-adds, params) of each of the 192 cells, as the analytic cost of a model made of that cell
    repeated n times with chain connections only. Cached: computed once per (n, lr_size)."""
    costs = [genome_cost(Genome((c,) * n_cells, (0,) * num_connection_bits(n_cells)), lr_size)
             for c in range(NUM_CHOICES)]
    return tuple(float(c.mult_adds) for c in costs), tuple(float(c.params) for c in costs)


def log_cost_fitness(costs: Sequence[float]) -> tuple[float, ...]:
    """Roulette-wheel fitness favouring cheap cells: 1 + ln(max_cost / cost).

    The most expensive cell keeps fitness 1 (it can still be drawn); a cell k times cheaper gets
    1 + ln k, so the preference grows with the cost ratio but only logarithmically: the cheapest cells
    (hundreds of times cheaper) are favoured without taking over the wheel.
    """
    top = max(costs)
    return tuple(1.0 + math.log(top / c) for c in costs)


@functools.lru_cache(maxsize=None)
def roulette_wheel(n_cells: int, metric: str, lr_size: tuple[int, int] = (480, 480)) -> tuple[float, ...]:
    """Cumulative roulette-wheel weights over the 192 cells for 'mult_adds' or 'params' (cached)."""
    mult_adds, params = cell_costs(n_cells, lr_size)
    costs = {"mult_adds": mult_adds, "params": params}[metric]
    return tuple(itertools.accumulate(log_cost_fitness(costs)))


def roulette_mutation(genome: Genome, rng: random.Random, metric: str = "mult_adds",
                      lr_size: tuple[int, int] = (480, 480)) -> Genome:
    """Roulette-wheel selection on the micro genes: n cells drawn by log-cost fitness, connections kept."""
    cum = roulette_wheel(genome.n_cells, metric, tuple(lr_size))
    return Genome(tuple(rng.choices(range(NUM_CHOICES), cum_weights=cum, k=genome.n_cells)), genome.connections)


def exploration_mutation(genome: Genome, rng: random.Random, settings: SearchSettings) -> tuple[Genome, str]:
    """Random mutation (p_mr) or roulette-wheel selection by mult-adds (p_mf) or by params; returns the
    mutant and the operator's name."""
    if rng.random() < settings.p_random_mutation:
        return random_mutation(genome, rng, settings.cell_mutation_probability,
                               settings.bit_mutation_probability), "mutation_random"
    metric = "mult_adds" if rng.random() < settings.p_roulette_mult_adds else "params"
    return roulette_mutation(genome, rng, metric, settings.lr_size), f"roulette_{metric}"


# -- DEAP toolbox ------------------------------------------------------------------------------------------

def make_toolbox(settings: SearchSettings) -> base.Toolbox:
    """The operators bound to ``settings`` in DEAP's toolbox idiom; each call takes the RNG to draw from."""
    toolbox = base.Toolbox()
    toolbox.register("init_population", init_population, settings)
    toolbox.register("mate", crossover)
    toolbox.register("mutate_random", random_mutation, cell_probability=settings.cell_mutation_probability,
                     bit_probability=settings.bit_mutation_probability)
    toolbox.register("mutate_roulette", roulette_mutation, lr_size=settings.lr_size)
    toolbox.register("mutate_explore", exploration_mutation, settings=settings)
    return toolbox
