"""The search's operators in DEAP's form, the genome adapter, and the toolbox built from the config."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

import deap.tools
import pytest
from omegaconf import OmegaConf
from scipy import stats

from falsr.errors import UserError
from falsr.search.generation import new_search
from falsr.search.operators import (
    GeneList,
    _cell_costs,
    _roulette_wheel,
    cell_costs,
    cx_eq4,
    cx_one_point,
    init_single_cell,
    init_uniform,
    initial_connections,
    mut_explore,
    mut_hybrid,
    mut_random,
    mut_roulette,
    mut_uniform,
    to_genome,
    wheel_pressure,
)
from falsr.search.settings import SearchSettings
from falsr.search.toolbox import PAPER_TOOLBOX, paper_toolbox
from falsr.space.cost import genome_cost
from falsr.space.genome import (
    CELL_CHOICES,
    NUM_CHOICES,
    Genome,
    GenomeError,
    SearchSpace,
    group_starts,
    num_connection_bits,
    set_space,
)

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def search_for(n_cells: int = 7, **settings):
    set_space(SearchSpace(n_cells=n_cells))
    return new_search(SearchSettings(**settings), seed=0)


def assert_valid(genome: Genome, n: int):
    assert isinstance(genome, Genome)
    again = Genome(genome.cells, genome.connections)  # the validating constructor accepts it
    assert again.n_cells == n and len(again.connections) == num_connection_bits(n)
    assert Genome.from_string(genome.to_string()) == genome
    assert genome.canonical().key == genome.key


def test_gene_list_round_trips_a_genome_and_rejects_what_is_not_one():
    g = Genome.random(7, random.Random(0))
    genes = GeneList.from_genome(g)
    assert genes == list(g.cells + g.connections) and genes.n_cells == 7 and to_genome(genes) == g
    with pytest.raises(GenomeError, match="not n cells"):
        to_genome(list(genes) + [0])
    genes[0] = 192
    with pytest.raises(GenomeError, match="integer 0..191"):
        to_genome(genes)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9])
def test_every_operator_yields_valid_genomes(n):
    search = search_for(n_cells=n, population_size=16)
    for seed in range(15):
        random.seed(seed)
        population = init_single_cell(16, search=search) + init_uniform(4, search=search)
        for g in population:
            assert_valid(g, n)
        for a, b in zip(population[::2], population[1::2]):
            for cross in (cx_eq4, cx_one_point):
                for child in cross(GeneList.from_genome(a), GeneList.from_genome(b)):
                    assert_valid(to_genome(child), n)
                    for mutate in (mut_random, mut_roulette, mut_explore, mut_hybrid, mut_uniform):
                        (mutant,) = mutate(GeneList(child), search=search)
                        assert_valid(to_genome(mutant), n)


@pytest.mark.parametrize("size", [64, 160, 192])
def test_initial_population_repeats_one_cell_and_all_cells_differ(size):
    random.seed(size)
    genomes = init_single_cell(size, search=search_for(population_size=size))
    assert len(genomes) == size
    assert all(len(set(g.cells)) == 1 for g in genomes)  # a random cell repeated n times
    cells = [g.cells[0] for g in genomes]
    assert len(set(cells)) == size  # all models with different cells
    if size <= 160:  # and different as networks while there are enough network-distinct cells
        assert len({CELL_CHOICES[c].canonical() for c in cells}) == size


def test_initial_population_larger_than_the_choices_reuses_cells_evenly():
    random.seed(0)
    genomes = init_single_cell(500, search=search_for(population_size=500))
    counts = Counter(g.cells[0] for g in genomes)
    assert len(counts) == NUM_CHOICES and max(counts.values()) <= math.ceil(500 / NUM_CHOICES)


def test_initial_connections_follow_the_categorical_draw():
    random.seed(1)
    n, draws = 7, 6000
    bits = num_connection_bits(n)
    patterns = [initial_connections(n, 0.5, 0.3) for _ in range(draws)]
    dense = sum(p == (1,) * bits for p in patterns) / draws
    none = sum(p == (0,) * bits for p in patterns) / draws
    random_ones = [sum(p) / bits for p in patterns if 0 < sum(p) < bits]
    assert abs(dense - 0.3) < 0.03 and abs(none - 0.2) < 0.03
    assert abs(len(random_ones) / draws - 0.5) < 0.03
    assert abs(sum(random_ones) / len(random_ones) - 0.5) < 0.01  # uniform bits inside the random category


def distinct_parents(n: int):
    """A and B differing in every gene: cells 1 vs 2, bits 1 vs 0."""
    return Genome((1,) * n, (1,) * num_connection_bits(n)), Genome((2,) * n, (0,) * num_connection_bits(n))


def test_eq4_child_holds_exactly_one_cell_and_one_connection_group_of_the_other_parent():
    n = 7
    a, b = distinct_parents(n)
    starts = group_starts(n)
    cells_taken, groups_taken = Counter(), Counter()
    random.seed(4)
    draws = 7000
    for _ in range(draws):
        c, d = (to_genome(x) for x in cx_eq4(GeneList.from_genome(a), GeneList.from_genome(b)))
        from_b = [k for k in range(n) if c.cells[k] == 2]
        assert len(from_b) == 1  # exactly one cell gene x_i from B, the others A's
        (i,) = from_b
        bits_from_b = [k for k, bit in enumerate(c.connections) if bit == 0]
        groups = {next(g for g in range(n) if starts[g] <= k < starts[g + 1]) for k in bits_from_b}
        assert len(groups) == 1  # one connection group c_j^{j+1..n} from B ...
        (j,) = groups
        assert bits_from_b == list(range(starts[j], starts[j + 1]))  # ... whole, and nothing else
        # the second child is Eq. 4 with the roles swapped at the same i and j
        assert [k for k in range(n) if d.cells[k] == 1] == [i]
        assert [k for k, bit in enumerate(d.connections) if bit == 1] == bits_from_b
        cells_taken[i] += 1
        groups_taken[j] += 1
    for counts in (cells_taken, groups_taken):  # i and j uniform over 0..n-1
        assert sorted(counts) == list(range(n))
        assert stats.chisquare([counts[k] for k in range(n)]).pvalue > 1e-3


def test_one_point_crossover_cuts_cells_and_whole_source_node_groups():
    n = 6
    a, b = distinct_parents(n)
    boundaries = set(group_starts(n)[1:-1])
    cuts_i, cuts_j = set(), set()
    random.seed(0)
    for _ in range(300):
        c1, c2 = (to_genome(x) for x in cx_one_point(GeneList.from_genome(a), GeneList.from_genome(b)))
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
    random.seed(3)
    search = search_for()
    g = Genome((5,) * 7, (0,) * 28)
    changed_cells = changed_bits = 0
    for _ in range(2000):
        (m,) = mut_random(GeneList.from_genome(g), search=search)
        m = to_genome(m)
        changed_cells += sum(x != 5 for x in m.cells)
        changed_bits += sum(m.connections)
    assert abs(changed_cells / 2000 - 1.0) < 0.1 and abs(changed_bits / 2000 - 1.0) < 0.1


def test_zero_mutation_rates_are_zero_not_the_default():
    search = search_for(random_mutation_cell_probability=0.0, random_mutation_bit_probability=0.0)
    assert search.settings.cell_mutation_probability == 0.0 == search.settings.bit_mutation_probability
    g = Genome.random(7, random.Random(1))
    random.seed(0)
    assert all(to_genome(mut_random(GeneList.from_genome(g), search=search)[0]) == g for _ in range(200))


def test_exploration_is_the_papers_categorical_choice():
    """p < p_mr: random mutation; p_mr <= p < p_mr + p_mf: roulette by mult-adds; else roulette by params."""
    search = search_for(p_random_mutation=0.5, p_roulette_mult_adds=0.3)
    random.seed(5)
    g = GeneList.from_genome(Genome.random(7, random.Random(2)))
    origins = Counter(mut_explore(GeneList(g), search=search)[0].origin for _ in range(6000))
    share = {k: v / 6000 for k, v in origins.items()}
    assert abs(share["mutation_random"] - 0.5) < 0.02
    assert abs(share["roulette_mult_adds"] - 0.3) < 0.02 and abs(share["roulette_params"] - 0.2) < 0.02
    with pytest.raises(ValueError, match="must not exceed 1"):
        SearchSettings(p_random_mutation=0.8, p_roulette_mult_adds=0.3)


@pytest.mark.parametrize("metric", ["mult_adds", "params"])
def test_roulette_wheel_pressure_on_the_cheapest_cells(metric):
    """The probability mass the wheel puts on the cheapest 10% of the 192 cells, against a uniform draw."""
    for pressure in (0.0, 1.0, 2.0, 4.0, 6.0):
        mass, ratio = wheel_pressure(7, metric, pressure)
        print(
            f"\nroulette ({metric}), pressure {pressure}: cheapest 10% of cells get {mass:.1%} of the draws "
            f"({ratio:.2f}x uniform)",
            end="",
        )
    assert wheel_pressure(7, metric, 0.0)[1] == pytest.approx(1.0)
    mass, ratio = wheel_pressure(7, metric, SearchSettings().roulette_pressure)
    assert 2.5 < ratio < 3.0  # the documented 2.76x at the default pressure 4
    # and the draws follow the wheel
    search = search_for()
    costs = cell_costs(7)[0 if metric == "mult_adds" else 1]
    cheapest = set(sorted(range(NUM_CHOICES), key=lambda c: (costs[c], c))[:19])
    random.seed(11)
    g = GeneList.from_genome(Genome.random(7, random.Random(0)))
    drawn = [c for _ in range(3000) for c in mut_roulette(GeneList(g), search=search, metric=metric)[0][:7]]
    assert abs(sum(c in cheapest for c in drawn) / len(drawn) - mass) < 0.015


@pytest.mark.parametrize("metric", ["mult_adds", "params"])
def test_roulette_wheel_favours_cheaper_cells(metric):
    """Roulette-wheel cells give clearly cheaper models than uniform cells (same connections)."""
    rng = random.Random(7)
    random.seed(7)
    search = search_for()
    rws, uniform = [], []
    for _ in range(1500):
        base = Genome.random(7, rng)
        rws.append(
            getattr(
                genome_cost(to_genome(mut_roulette(GeneList.from_genome(base), search=search, metric=metric)[0])),
                metric,
            )
        )
        uniform.append(getattr(genome_cost(base), metric))
    mean_rws, mean_uniform = sum(rws) / len(rws), sum(uniform) / len(uniform)
    t = stats.ttest_ind(rws, uniform, equal_var=False, alternative="less")
    print(
        f"\nroulette ({metric}): mean {mean_rws:.4g} vs uniform {mean_uniform:.4g} "
        f"(ratio {mean_rws / mean_uniform:.2f}, Welch p = {t.pvalue:.1e})"
    )
    assert mean_rws < 0.6 * mean_uniform and t.pvalue < 1e-8


def test_roulette_wheel_mutation_is_fast():
    search = search_for()
    g = GeneList.from_genome(Genome.random(7, random.Random(0)))
    _roulette_wheel.cache_clear()
    _cell_costs.cache_clear()
    start = time.perf_counter()
    mut_roulette(GeneList(g), search=search)  # first call builds the cached wheel (192 cost evaluations)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(1000):
        mut_roulette(GeneList(g), search=search)
    per_call = (time.perf_counter() - start) / 1000
    print(
        f"\nroulette-wheel mutation: {per_call * 1e6:.1f} us per call (first call, building the wheel: "
        f"{first * 1e3:.2f} ms)"
    )
    assert per_call < 1e-3 and first < 0.1


# -- the toolbox --------------------------------------------------------------------------------------------


def test_the_default_toolbox_is_the_papers_and_the_config_says_the_same():
    search = search_for()
    labels = {name: getattr(search.toolbox, name).label for name in PAPER_TOOLBOX}
    assert labels == {
        "population": "init_single_cell",
        "select": "sel_crowded_tournament",
        "mate": "cx_eq4",
        "mutate": "mut_hybrid",
        "survive": "sel_nsga2",
    }
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        conf = OmegaConf.to_container(compose("search", overrides=["+search=nsga2"]).search.toolbox)
    assert conf == PAPER_TOOLBOX  # the composed search config gets the toolbox from the schema's default


def test_a_swapped_deap_crossover_is_the_one_called(monkeypatch):
    calls = []
    original = deap.tools.cxTwoPoint

    def spy(a, b):  # DEAP's own operator, observed
        calls.append((list(a), list(b)))
        return original(a, b)

    monkeypatch.setattr(deap.tools, "cxTwoPoint", spy)
    config = paper_toolbox()
    config["mate"] = {"_target_": "deap.tools.cxTwoPoint", "_partial_": True}
    search = new_search(SearchSettings(population_size=8), toolbox=config)
    assert search.toolbox.mate.label == "spy"  # the function Hydra located at deap.tools.cxTwoPoint
    a, b = distinct_parents(7)
    random.seed(3)
    c, d = search.toolbox.mate(GeneList.from_genome(a), GeneList.from_genome(b))
    assert len(calls) == 1
    # two-point crossover of the flat lists: one contiguous run of genes exchanged
    flat_a, flat_b = GeneList.from_genome(a), GeneList.from_genome(b)
    swapped = [k for k in range(len(c)) if c[k] != flat_a[k]]
    assert swapped and swapped == list(range(swapped[0], swapped[-1] + 1))
    assert list(c) == [flat_b[k] if k in swapped else flat_a[k] for k in range(len(c))]
    assert list(d) == [flat_a[k] if k in swapped else flat_b[k] for k in range(len(d))]


def test_mutflipbit_on_the_connection_bits_leaves_the_cells_alone():
    config = paper_toolbox()
    config["mutate"] = {"_target_": "deap.tools.mutFlipBit", "_partial_": True, "indpb": 0.25, "genes": "connections"}
    search = new_search(SearchSettings(), toolbox=config)
    assert search.toolbox.mutate.label == "mutFlipBit"
    g = Genome.random(7, random.Random(0))
    random.seed(0)
    flips = 0
    for _ in range(400):
        (m,) = search.toolbox.mutate(GeneList.from_genome(g))
        m = to_genome(m)
        assert m.cells == g.cells
        flips += sum(x != y for x, y in zip(m.connections, g.connections))
    assert abs(flips / (400 * 28) - 0.25) < 0.02


@pytest.mark.parametrize(
    "entry, value, fragment",
    [
        (
            "mate",
            {"_target_": "deap.tools.cxNoSuchThing"},
            "search.toolbox.mate: Error locating target 'deap.tools.cxNoSuchThing'",
        ),
        (
            "mutate",
            {"_target_": "deap.tools.mutFlipBit"},
            "search.toolbox.mutate: deap.tools.mutFlipBit cannot be called as "
            "mutate(ind): missing a required argument: 'indpb'",
        ),
        ("mate", {"_target_": "deap.tools.cxTwoPoint", "genes": "bits"}, "genes='bits'"),
        ("survive", None, "search.toolbox.survive needs a _target_"),
    ],
)
def test_bad_toolbox_entries_are_one_line_user_errors(entry, value, fragment):
    config = paper_toolbox()
    config[entry] = value
    with pytest.raises(UserError) as info:
        new_search(SearchSettings(), toolbox=config)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="unknown entry evaluate"):
        new_search(SearchSettings(), toolbox={**paper_toolbox(), "evaluate": {"_target_": "len"}})


def test_an_operator_that_breaks_the_genome_is_a_one_line_user_error():
    from falsr.search.generation import evaluate, propose, tell

    config = paper_toolbox()
    config["mutate"] = {"_target_": "deap.tools.mutUniformInt", "_partial_": True, "low": 0, "up": 500, "indpb": 1.0}
    set_space(SearchSpace(n_cells=3))
    state = new_search(SearchSettings(population_size=4), toolbox=config)
    tell(state, evaluate(propose(state), lambda g: 30.0, state.settings))
    with pytest.raises(UserError, match=r"search.toolbox.mutate \(mutUniformInt\) made an invalid genome: bad"):
        propose(state)
