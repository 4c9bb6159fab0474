"""Initialisation, crossover and exploration mutations of the search (falsr.search.operators)."""

from __future__ import annotations

import math
import random
import time
from collections import Counter

import pytest
from scipy import stats

from falsr.cost import genome_cost
from falsr.genome import CELL_CHOICES, NUM_CHOICES, Genome, num_connection_bits
from falsr.search.controller import RLController
from falsr.search.operators import (cell_costs, crossover, group_starts, init_population, initial_connections, make_toolbox,
                                    random_mutation, roulette_mutation, roulette_wheel)
from falsr.search.settings import SearchSettings


def assert_valid(genome: Genome, n: int):
    assert isinstance(genome, Genome)
    again = Genome(genome.cells, genome.connections)  # the validating constructor accepts it
    assert again.n_cells == n and len(again.connections) == num_connection_bits(n)
    assert Genome.from_string(genome.to_string()) == genome
    assert genome.canonical().key == genome.key


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9])
def test_every_operator_yields_valid_genomes(n):
    settings = SearchSettings(n_cells=n, population_size=16)
    controller = RLController(n, seed=n)
    for seed in range(15):
        rng = random.Random(seed)
        population = init_population(settings, rng)
        for g in population:
            assert_valid(g, n)
        for a, b in zip(population[::2], population[1::2]):
            for child in crossover(a, b, rng):
                assert_valid(child, n)
                assert_valid(random_mutation(child, rng, 0.5, 0.5), n)
                assert_valid(roulette_mutation(child, rng, "mult_adds"), n)
                assert_valid(roulette_mutation(child, rng, "params"), n)
        for g in controller.sample(4):
            assert_valid(g, n)


@pytest.mark.parametrize("size", [64, 160, 192])
def test_initial_population_repeats_one_cell_and_all_cells_differ(size):
    genomes = init_population(SearchSettings(population_size=size), random.Random(size))
    assert len(genomes) == size
    assert all(len(set(g.cells)) == 1 for g in genomes)  # a random cell repeated n times
    cells = [g.cells[0] for g in genomes]
    assert len(set(cells)) == size  # all models with different cells
    if size <= 160:  # and different as networks while there are enough network-distinct cells
        assert len({CELL_CHOICES[c].canonical() for c in cells}) == size


def test_initial_population_larger_than_the_choices_reuses_cells_evenly():
    genomes = init_population(SearchSettings(population_size=500), random.Random(0))
    counts = Counter(g.cells[0] for g in genomes)
    assert len(counts) == NUM_CHOICES and max(counts.values()) <= math.ceil(500 / NUM_CHOICES)


def test_initial_connections_follow_the_categorical_draw():
    rng, n, draws = random.Random(1), 7, 6000
    bits = num_connection_bits(n)
    patterns = [initial_connections(n, rng, 0.5, 0.3) for _ in range(draws)]
    dense = sum(p == (1,) * bits for p in patterns) / draws
    none = sum(p == (0,) * bits for p in patterns) / draws
    random_ones = [sum(p) / bits for p in patterns if 0 < sum(p) < bits]
    assert abs(dense - 0.3) < 0.03 and abs(none - 0.2) < 0.03
    assert abs(len(random_ones) / draws - 0.5) < 0.03
    assert abs(sum(random_ones) / len(random_ones) - 0.5) < 0.01  # uniform bits inside the random category


def test_crossover_cuts_cells_and_whole_source_node_groups():
    n = 6
    a = Genome((1,) * n, (1,) * num_connection_bits(n))
    b = Genome((2,) * n, (0,) * num_connection_bits(n))
    boundaries = set(group_starts(n)[1:-1])
    cuts_i, cuts_j = set(), set()
    for seed in range(300):
        c1, c2 = crossover(a, b, random.Random(seed))
        i = c1.cells.index(2)
        j = c1.connections.index(0)
        assert c1.cells == (1,) * i + (2,) * (n - i) and c2.cells == (2,) * i + (1,) * (n - i)
        assert c1.connections == (1,) * j + (0,) * (len(a.connections) - j)
        assert c2.connections == tuple(1 - x for x in c1.connections)
        assert j in boundaries  # the macro cut falls between c_i^{i+1..n} groups
        cuts_i.add(i)
        cuts_j.add(j)
    assert cuts_i == set(range(1, n)) and cuts_j == boundaries


def test_random_mutation_changes_genes_at_the_given_rates():
    rng = random.Random(3)
    g = Genome((5,) * 7, (0,) * 28)
    changed_cells = changed_bits = 0
    for _ in range(2000):
        m = random_mutation(g, rng, 1 / 7, 1 / 28)
        changed_cells += sum(x != 5 for x in m.cells)
        changed_bits += sum(m.connections)
    assert abs(changed_cells / 2000 - 1.0) < 0.1 and abs(changed_bits / 2000 - 1.0) < 0.1


@pytest.mark.parametrize("metric", ["mult_adds", "params"])
def test_roulette_wheel_favours_cheaper_cells(metric):
    """Roulette-wheel cells give clearly cheaper models than uniform cells (same connections)."""
    rng = random.Random(7)
    rws, uniform = [], []
    for _ in range(1500):
        base = Genome.random(7, rng)
        rws.append(getattr(genome_cost(roulette_mutation(base, rng, metric)), metric))
        uniform.append(getattr(genome_cost(base), metric))
    mean_rws, mean_uniform = sum(rws) / len(rws), sum(uniform) / len(uniform)
    t = stats.ttest_ind(rws, uniform, equal_var=False, alternative="less")
    print(f"\nroulette ({metric}): mean {mean_rws:.4g} vs uniform {mean_uniform:.4g} "
          f"(ratio {mean_rws / mean_uniform:.2f}, Welch p = {t.pvalue:.1e})")
    assert mean_rws < 0.8 * mean_uniform and t.pvalue < 1e-8


def test_roulette_wheel_mutation_is_fast():
    rng = random.Random(0)
    g = Genome.random(7, rng)
    roulette_wheel.cache_clear()
    cell_costs.cache_clear()
    start = time.perf_counter()
    roulette_mutation(g, rng, "mult_adds")  # first call builds the cached wheel (192 cost evaluations)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(1000):
        roulette_mutation(g, rng, "mult_adds")
    per_call = (time.perf_counter() - start) / 1000
    print(f"\nroulette-wheel mutation: {per_call * 1e6:.1f} us per call (first call, building the wheel: "
          f"{first * 1e3:.2f} ms)")
    assert per_call < 1e-3 and first < 0.1


def test_toolbox_registers_the_operators():
    settings = SearchSettings(population_size=8)
    tb = make_toolbox(settings)
    rng = random.Random(0)
    pop = tb.init_population(rng)
    c1, c2 = tb.mate(pop[0], pop[1], rng)
    for g in (tb.mutate_random(c1, rng), tb.mutate_roulette(c2, rng, "params"), tb.mutate_explore(c1, rng)[0]):
        assert_valid(g, settings.n_cells)
