"""search.objectives with latency: the table's prediction as an objective, end to end through search.py."""

import json
import subprocess
import sys

import pytest
import torch

from falsr.latency import LatencySettings
from falsr.latency.table import LatencyTable
from falsr.search.nsga import Individual, hypervolume, select_survivors
from falsr.search.objectives import (
    ObjectiveError,
    Objectives,
    check_names,
    using_objectives,
)
from falsr.search.settings import Constraints, HypervolumeBox
from falsr.space.genome import Genome, SearchSpace, using_space
from test_search_e2e import (
    GENERATIONS,
    POPULATION,
    REPO,
    env_for,
    journal,
    kill_when,
    run_search,
    search_args,
)

# A small space (34 table parts), so the table is profiled in seconds; the search runs in it too.
SPACE = [
    "space.ops=[conv,invbottleneck_e2]",
    "space.channels=[16]",
    "space.kernels=[3]",
    "space.repeats=[1,2]",
    "space.n_cells=3",
]
SPACE_KW = dict(ops=("conv", "invbottleneck_e2"), channels=(16,), kernels=(3,), repeats=(1, 2), n_cells=3)


@pytest.mark.parametrize(
    "names, fragment",
    [
        (["psnr", "speed"], "unknown objective 'speed': choose from psnr, mult_adds, params, latency"),
        (["mult_adds", "params"], "give psnr and at least one cost"),
        (["psnr", "latency", "latency"], "repeated"),
    ],
)
def test_bad_objectives_are_one_line_errors(names, fragment):
    with pytest.raises(ObjectiveError, match=fragment):
        check_names(names)
    assert check_names(["latency", "psnr"]) == ("psnr", "latency")


def test_selection_and_hypervolume_follow_two_objectives():
    """With (psnr, latency) a model that is slower but no better is dominated whatever its mult-adds, and the
    hypervolume is a 2-D area in the box (latency on a log scale from latency_min to latency_max)."""
    g = [Genome.random(3, __import__("random").Random(i)) for i in range(3)]
    with using_objectives(Objectives(("psnr", "latency"))):
        inds = [Individual(g[0], (30.0, 10.0)), Individual(g[1], (29.0, 20.0)), Individual(g[2], (31.0, 40.0))]
        survivors = select_survivors(inds, 2)
        assert {s.genome for s in survivors} == {g[0], g[2]}
        box = HypervolumeBox(psnr_min=20.0, psnr_max=40.0, latency_min=1.0, latency_max=100.0)
        assert hypervolume([(30.0, 10.0)], box) == pytest.approx(0.5 * 0.5)
        capped = Individual(g[2], (31.0, 40.0), Constraints(max_mult_adds=None, max_latency_ms=30.0))
        assert capped.fitness.violation == pytest.approx(1 / 3)


def profile(cache: str, *extra: str):
    proc = subprocess.run(
        [sys.executable, "-m", "falsr.latency", "profile", *latency_args(cache), *SPACE, *extra],
        cwd=REPO,
        env=env_for(REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def latency_args(cache: str) -> list[str]:
    return ["backend=eager", "lr_size=[16,16]", "repeats=3", "min_run_ms=1", f"cache_dir={cache}"]


def latency_search_args(data, sweep, cache: str, *extra: str) -> list[str]:
    """A tiny search on [psnr, latency] in the small SPACE, reading the table of `latency_args(cache)`."""
    return search_args(
        data,
        sweep,
        "search.objectives=[psnr,latency]",
        *[f"search.latency.{a}" for a in latency_args(cache)],
        *SPACE,
        *extra,
    )


def tiny_table(cache: str) -> LatencyTable:
    """The table that `latency_args(cache)` names."""
    return LatencyTable(LatencySettings(backend="eager", lr_size=(16, 16), repeats=3, min_run_ms=1, cache_dir=cache))


@pytest.mark.slow
def test_a_tiny_search_on_psnr_and_latency(tiny_data, tmp_path):
    """search.objectives=[psnr,latency]: refused in one line while the table is missing; with it, the search runs
    end to end, its front carries the table's latencies, its reports plot PSNR against latency, and a search
    killed mid-generation resumes to the end."""
    cache = str(tmp_path / "latency")
    args = latency_search_args(tiny_data, tmp_path / "sweep", cache)
    missing = run_search(args, tmp_path, timeout=300)
    assert missing.returncode == 2 and "python -m falsr.latency profile backend=eager" in missing.stderr, (
        missing.stderr[-2000:]
    )
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr[-2000:]
    profile(cache)

    sweep = tmp_path / "sweep"
    kill_when(args, sweep, tmp_path, "sum(r.get('job_num') is not None for r in records) >= 2")
    assert 2 <= len(journal(sweep)) < POPULATION * (GENERATIONS + 1)
    proc = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = journal(sweep)
    assert len({r["key"] for r in records}) == POPULATION * (GENERATIONS + 1)
    pareto = json.loads((sweep / "pareto.json").read_text())
    table = tiny_table(cache)
    with using_space(SearchSpace(**SPACE_KW)):
        assert pareto["front"] and all(
            r["latency_ms"] == pytest.approx(table.predict(r["genome"])) for r in pareto["front"]
        )
    assert "| latency |" in (sweep / "pareto.md").read_text()
    assert (sweep / "front_psnr_vs_latency.png").stat().st_size > 1000
    # the final front measured end to end (the table only predicted it), beside the prediction
    measured = json.loads((sweep / "front_latency.json").read_text())
    assert [r["genome"] for r in measured["front"]] == [r["genome"] for r in pareto["front"]]
    assert all(
        r["measured_ms"] > 0 and r["predicted_ms"] == pytest.approx(p["latency_ms"])
        for r, p in zip(measured["front"], pareto["front"])
    )
    assert (
        measured["settings"]["backend"] == "eager" and "| measured (ms) |" in (sweep / "front_latency.md").read_text()
    )
    assert not (sweep / "front_psnr_vs_mult_adds.png").exists()
    assert torch.load(sweep / "search_state.pt", weights_only=False)["objectives"] == ["psnr", "latency"]
    # resumed with other objectives: a one-line error naming the ones it ran with
    again = run_search(search_args(tiny_data, sweep, f"search.resume={sweep}", *SPACE), tmp_path, timeout=300)
    assert again.returncode == 2 and "search.objectives=[psnr,latency]" in again.stderr.strip().splitlines()[-1]


def test_a_latency_cap_no_candidate_meets_is_explained_in_one_line():
    from falsr.search.hydra_glue import infeasible_search_message
    from falsr.search.journal import JournalRecord
    from falsr.search.settings import SearchSettings

    settings = SearchSettings(constraints=Constraints(max_latency_ms=5.0))
    records = [
        JournalRecord(
            key=str(i),
            genome="1.2-10_1",
            generation=0,
            status="over_latency_cap",
            mult_adds=1e9,
            params=1e4,
            latency_ms=ms,
            error=f"predicted latency {ms:.1f} ms over the cap 5 ms",
        )
        for i, ms in enumerate((7.5, 12.0))
    ]
    message = infeasible_search_message(records, settings)
    assert "max_latency_ms=5" in message and "predicted at 7.5 ms" in message and "\n" not in message
