"""Latency in the search's operators and checks: the roulette wheel by latency, the exact fastest network of a
space by the table (a latency cap no network meets is refused before any job) and the candidates' latency column.

Every table here is real: measured on this machine in a small space at 16x16 (a few seconds), in a tmp cache dir.
"""

import itertools
import math
import random
import time
from collections import Counter

import pytest

from falsr.errors import UserError
from falsr.latency import LatencySettings
from falsr.latency.table import LatencyTable, cell_latencies, fastest_genome, space_keys
from falsr.search.generation import evaluate, new_search, propose, tell
from falsr.search.hydra_glue import (
    CANDIDATE_COLUMNS,
    candidate_columns,
    candidate_rows,
    check_constraints_reachable,
)
from falsr.search.journal import JournalRecord
from falsr.search.objectives import Objectives, using_objectives
from falsr.search.operators import (
    GeneList,
    mut_explore,
    mut_roulette,
    roulette_branches,
    roulette_wheel,
    wheel_weights,
)
from falsr.search.settings import Constraints, SearchSettings
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome, SearchSpace, num_connection_bits, using_space
from test_latency_search import latency_search_args, profile, run_search

# Two widths, so a connection bit changes a cell's input width: 8 cell choices, 2 cells, 3 connection bits.
SMALL = SearchSpace(ops=("conv",), channels=(16, 32), kernels=(3,), repeats=(1, 2), n_cells=2)
NO_CAP = Constraints(max_mult_adds=None)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def every_genome(space: SearchSpace) -> list[Genome]:
    with using_space(space):
        return [
            Genome(cells, bits)
            for cells in itertools.product(range(space.num_choices), repeat=space.n_cells)
            for bits in itertools.product((0, 1), repeat=num_connection_bits(space.n_cells))
        ]


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> LatencySettings:
    """The settings of a table measured once for SMALL (every part the space may need)."""
    cache = tmp_path_factory.mktemp("latency")
    settings = LatencySettings(backend="eager", lr_size=(16, 16), repeats=3, min_run_ms=1, cache_dir=str(cache))
    LatencyTable(settings).profile(space_keys(SMALL), progress=False)
    return settings


# -- the fastest network of a space ------------------------------------------------------------------------------


def test_the_fastest_genome_is_the_minimum_over_a_whole_small_space(settings):
    """Exact against brute force over all 512 genomes, on the measured table and on the same table made
    non-monotone (wider inputs faster, free concatenations): there the fastest network has connection bits, which
    a search over unconnected genomes alone would miss."""
    table = LatencyTable(settings)  # its own copy: the entries are edited below
    genomes = every_genome(SMALL)
    with using_space(SMALL):
        genome, ms = fastest_genome(table, SMALL)
        assert ms == pytest.approx(min(table.predict(g) for g in genomes))
        assert table.predict(genome) == pytest.approx(ms)
        chain = {16, 32}  # a cell's input widths without connection bits (the head's 32 included)
        for key in table.entries:
            kind, *rest = key.split("/")
            if kind == "concat":
                table.entries[key] = 0.0
            elif kind in ("cell", "up") and int(rest[-1]) not in chain:
                table.entries[key] = 1e-3  # a wider input predicted faster than any unconnected one
        genome, ms = fastest_genome(table, SMALL)
        assert ms == pytest.approx(min(table.predict(g) for g in genomes))
        assert table.predict(genome) == pytest.approx(ms) and any(genome.connections)


def test_the_fastest_genome_of_the_papers_space_is_fast(settings):
    """The check runs before every capped search: the DP over the paper's 192 choices and 7 cells stays well under
    a second or two (on a table with an entry, arbitrary and non-monotone, for each of the space's 4220 parts)."""
    rng = random.Random(0)
    table = LatencyTable(settings)
    table.entries = {k: rng.uniform(0.5, 2.0) for k in space_keys(SearchSpace())}
    start = time.perf_counter()
    genome, ms = fastest_genome(table, SearchSpace())
    took = time.perf_counter() - start
    print(f"\nfastest genome of the paper's space: {took * 1e3:.0f} ms")
    assert took < 2.0 and table.predict(genome) == pytest.approx(ms)


# -- the latency cap's reachability -------------------------------------------------------------------------------


def test_a_latency_cap_below_the_fastest_network_is_refused_before_training(settings):
    objectives = Objectives(("psnr", "latency"), settings)
    with using_space(SMALL):
        _, fastest = fastest_genome(LatencyTable(settings), SMALL)
        check_constraints_reachable(SearchSettings(constraints=NO_CAP), objectives)
        check_constraints_reachable(
            SearchSettings(constraints=Constraints(max_mult_adds=None, max_latency_ms=fastest * 1.001)), objectives
        )
        capped = SearchSettings(constraints=Constraints(max_mult_adds=None, max_latency_ms=fastest / 2))
        with pytest.raises(UserError) as err:
            check_constraints_reachable(capped, objectives)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(
            "no candidate can meet the constraints: search.settings.constraints.max_latency_ms="
        ), message
        assert f"predicted at {fastest:.3g} ms by the latency table" in message
        at_least = float(message.split("raise it to at least ")[1].split(" ")[0])
        assert fastest <= at_least <= fastest * 1.01
        check_constraints_reachable(
            SearchSettings(constraints=Constraints(max_mult_adds=None, max_latency_ms=at_least)), objectives
        )
        # a latency cap is checked whatever the objectives: it reads search.latency's table
        with pytest.raises(UserError, match="max_latency_ms"):
            check_constraints_reachable(capped, Objectives(("psnr", "mult_adds", "params"), settings))


@pytest.mark.slow
def test_an_unreachable_latency_cap_fails_in_one_line_before_any_job(tiny_data, tmp_path):
    """Through search.py, as the mult-adds cap (tests/test_edges.py): exit status 2, one line naming the key, the
    fastest network's predicted ms and a value that works; no job, no journal."""
    cache = str(tmp_path / "latency")
    profile(cache)
    sweep = tmp_path / "sweep"
    args = latency_search_args(tiny_data, sweep, cache, "search.settings.constraints.max_latency_ms=1e-6")
    proc = run_search(args, tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = lines[0]
    print(f"\n{line}")
    assert "no candidate can meet the constraints: search.settings.constraints.max_latency_ms=1e-6 ms" in line
    assert "the fastest network of the search space is predicted at" in line and "raise it to at least" in line
    assert not (sweep / "journal.jsonl").exists()  # nothing was launched


# -- the roulette wheel by latency ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "costs, expected",
    [
        (("mult_adds", "params"), (("mult_adds", 0.75), ("params", 1.0))),  # the paper's, as before
        (("latency",), (("latency", 1.0),)),
        (("mult_adds", "latency"), (("mult_adds", 0.75), ("latency", 1.0))),
        (("latency", "mult_adds"), (("mult_adds", 0.75), ("latency", 1.0))),  # the objectives' order does not matter
        (("params", "latency"), (("params", 0.75), ("latency", 1.0))),
        (("mult_adds", "params", "latency"), (("mult_adds", 0.75), ("params", 0.875), ("latency", 1.0))),
        (("mult_adds",), (("mult_adds", 1.0),)),
        (("params",), (("params", 1.0),)),
    ],
)
def test_the_roulette_wheels_follow_the_configured_costs(costs, expected):
    branches = roulette_branches(costs, 0.5, 0.25)
    assert [m for m, _ in branches] == [m for m, _ in expected]
    assert [u for _, u in branches] == pytest.approx([u for _, u in expected])


def test_exploration_draws_the_latency_wheel_when_latency_is_an_objective(settings):
    """[psnr, latency]: both roulette shares by latency, journaled `roulette_latency`; [psnr, mult_adds, latency]:
    mult-adds keeps p_mf, latency takes the params share."""
    with using_space(SMALL):
        search = new_search(SearchSettings(p_random_mutation=0.5, p_roulette_mult_adds=0.3), seed=0)
        g = GeneList.from_genome(Genome.random(2, random.Random(2)))
        for names, shares in (
            (("psnr", "latency"), {"mutation_random": 0.5, "roulette_latency": 0.5}),
            (
                ("psnr", "mult_adds", "latency"),
                {"mutation_random": 0.5, "roulette_mult_adds": 0.3, "roulette_latency": 0.2},
            ),
            (
                ("psnr", "mult_adds", "params"),
                {"mutation_random": 0.5, "roulette_mult_adds": 0.3, "roulette_params": 0.2},
            ),
        ):
            random.seed(5)
            with using_objectives(Objectives(names, settings)):
                origins = Counter(mut_explore(GeneList(g), search=search)[0].origin for _ in range(4000))
            assert set(origins) == set(shares), (names, origins)
            assert all(abs(origins[k] / 4000 - p) < 0.03 for k, p in shares.items()), (names, origins)


def test_the_latency_wheel_weights_cells_by_the_table_and_favours_fast_ones(settings):
    table = LatencyTable(settings)
    with using_space(SMALL), using_objectives(Objectives(("psnr", "latency"), settings)):
        ms = cell_latencies(table, 2, SMALL)
        assert ms == pytest.approx([table.predict(Genome((c, c), (0, 0, 0))) for c in range(SMALL.num_choices)])
        wheel = roulette_wheel(2, "latency", 4.0)
        assert wheel == pytest.approx(list(itertools.accumulate(wheel_weights(ms, 4.0))))
        assert roulette_wheel(2, "latency", 4.0, latency=settings) == wheel
        search = new_search(SearchSettings(), seed=0)
        random.seed(3)
        g = GeneList.from_genome(Genome.random(2, random.Random(0)))
        drawn = Counter(
            c for _ in range(3000) for c in mut_roulette(GeneList(g), search=search, metric="latency")[0][:2]
        )
        assert mut_roulette(GeneList(g), search=search, metric="latency")[0].origin == "roulette_latency"
    fastest, slowest = min(range(len(ms)), key=ms.__getitem__), max(range(len(ms)), key=ms.__getitem__)
    assert drawn[fastest] > 5 * drawn[slowest]  # e^4 = 55x by weight; a wide margin for sampling
    mean = sum(ms[c] * k for c, k in drawn.items()) / sum(drawn.values())
    assert mean < sum(ms) / len(ms)  # faster than a uniform draw's mean


def test_a_search_on_psnr_and_latency_journals_roulette_latency(settings):
    """The loop itself (propose / evaluate / tell) under [psnr, latency]: the roulette mutations are by latency, and
    never by mult-adds or params."""
    with using_space(SMALL), using_objectives(Objectives(("psnr", "latency"), settings)):
        state = new_search(
            SearchSettings(population_size=6, constraints=NO_CAP, max_offspring_attempts=5),
            seed=1,
            use_controller=False,
        )
        origins = []
        for _ in range(4):
            batch = propose(state)
            origins += [o.origin for o in batch]
            tell(state, evaluate(batch, lambda g: 30 + math.log1p(genome_cost(g).params), state.settings))
    mutations = Counter(o.split("+")[-1] for o in origins if "+" in o)
    assert mutations["roulette_latency"] > 0, mutations
    assert not {"roulette_mult_adds", "roulette_params"} & set(mutations), mutations


# -- the W&B candidates Table ------------------------------------------------------------------------------------


def test_the_candidates_table_has_a_latency_column_when_latency_is_an_objective(settings):
    with using_space(SMALL):
        genome = Genome((0, 5), (1, 0, 1))
        record = JournalRecord(
            key=genome.key, genome=genome.to_string(), generation=0, status="ok", psnr=30.0, mult_adds=1e6, params=1e3
        )
        paper = Objectives(("psnr", "mult_adds", "params"))
        assert candidate_columns(paper) == CANDIDATE_COLUMNS
        assert len(candidate_rows([record], paper)[0]) == len(CANDIDATE_COLUMNS)
        latency = Objectives(("psnr", "latency"), settings)
        columns = candidate_columns(latency)
        assert columns[columns.index("params") + 1] == "latency_ms" and len(columns) == len(CANDIDATE_COLUMNS) + 1
        row = dict(zip(columns, candidate_rows([record], latency)[0]))
        assert row["latency_ms"] == pytest.approx(LatencyTable(settings).predict(genome))
        assert row["psnr"] == 30.0 and row["genome"] == genome.to_string()
