"""Multi-fidelity promotion inside the search (falsr.search.fidelity) and the min_mult_adds floor.

The rule and the options on hand-made inputs (quick), then real tiny searches (slow): rungs [2, 4] steps, eta 2,
promoted candidates continued from their own checkpoint, a search killed with SIGKILL during a promotion and
resumed without training any (candidate, rung) twice.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from falsr.cli import CONF_DIR
from falsr.search.fidelity import job_overrides, promotion_order, promotions
from falsr.search.journal import STATUS_OK, STATUS_UNDER_FLOOR, Journal, JournalRecord, rung_of
from falsr.search.nsga import Individual, constraint_violation, rung_and_psnr, sel_nsga2, tiered_psnr
from falsr.search.report import markdown_table, pareto_records
from falsr.search.settings import Constraints, Fidelity, SearchSettings
from falsr.space.genome import Genome
from test_search_e2e import env_for, journal
from test_search_e2e import run_search as run

REPO = Path(__file__).resolve().parents[1]


# -- the rule, on hand-made candidates ----------------------------------------------------------------------


def genome(i: int) -> str:
    import random

    return str(Genome.random(7, random.Random(i)).canonical())


def line(i: int, psnr: float, gmacs: float, kparams: float, rung: int = 0, **extra) -> dict:
    """A journal line's object; ``name`` is no journal key (kept as an unknown one, ``extra``)."""
    return {
        "key": Genome.from_string(genome(i)).key,
        "name": f"k{i}",
        "genome": genome(i),
        "generation": 0,
        "origin": "init",
        "status": STATUS_OK,
        "psnr": psnr,
        "mult_adds": gmacs * 1e9,
        "params": kparams * 1e3,
        "rung": rung,
        **extra,
    }


def record(i: int, psnr: float, gmacs: float, kparams: float, rung: int = 0, **extra) -> JournalRecord:
    return JournalRecord.from_json(line(i, psnr, gmacs, kparams, rung, **extra))


def name(r: JournalRecord) -> str:
    return r.extra["name"]


# Six candidates at rung 0 (PSNR dB, mult-adds G, params K). Front 1: a (cheapest), b, c (best PSNR); d is
# dominated by b only (front 2), e by b and d (front 3), f by everyone (front 4).
HAND = [
    record(0, 30.0, 10, 100),
    record(1, 31.0, 20, 200),
    record(2, 32.0, 40, 400),
    record(3, 30.5, 25, 250),
    record(4, 30.2, 30, 300),
    record(5, 29.0, 50, 500),
]
assert len({genome(i) for i in range(8)}) == 8


def test_promotion_at_eta_2_takes_the_first_front_then_the_next():
    """eta=2: floor(6/2) = 3 promoted, the whole first front (a, b, c): each cost band's best, not the 3 best PSNRs
    (c 32.0, b 31.0, d 30.5)."""
    order = promotion_order(HAND)
    assert [name(r) for r in order] == ["k0", "k2", "k1", "k3", "k4", "k5"]  # ends of the front first (crowding)
    assert sorted(name(r) for r in promotions(HAND, 0, 2)) == ["k0", "k1", "k2"]
    assert [name(r) for r in promotions(HAND, 0, 3)] == ["k0", "k2"]  # floor(6/3) = 2: the front's two ends
    assert promotions(HAND[:1], 0, 2) == []  # floor(1/2) = 0


def test_promotion_skips_the_promoted_and_counts_the_whole_rung():
    """ASHA: the top floor(n / eta) of everything the rung holds, minus those with a record at the next rung
    (also a failed one); a rung-1 record is not a rung-0 candidate."""
    promoted = [record(0, 29.0, 10, 100, rung=1), record(2, 0.0, 40, 400, rung=1, status="failed")]
    assert [name(r) for r in promotions(HAND + promoted, 0, 2)] == ["k1"]
    # a new rung-0 candidate that beats everyone: the top 3 of 7 are c, a and it; only it is new
    new = record(6, 33.0, 5, 50)
    assert [name(r) for r in promotions(HAND + promoted + [new], 0, 2)] == ["k6"]
    # rung 1 -> 2: only candidates ok at rung 1
    assert promotions(HAND + promoted, 1, 2) == []


def test_a_candidate_below_the_psnr_floor_is_promoted_last():
    constraints = Constraints(min_psnr=30.1, max_mult_adds=None)
    assert [name(r) for r in promotion_order(HAND, constraints)][-2:] == [
        "k0",
        "k5",
    ]  # infeasible: behind every feasible


def test_nsga2_compares_rung_then_psnr():
    """A model measured at rung 1 wins the PSNR comparison against any rung-0 model (lexicographic), the costs
    still count: a cheaper rung-0 model stays on the front."""
    assert rung_and_psnr(tiered_psnr(27.25, 2)) == (2, 27.25) and rung_and_psnr(tiered_psnr(27.25)) == (0, 27.25)
    g = [Genome.from_string(genome(i)) for i in range(3)]
    high = Individual(g[0], (tiered_psnr(25.0, 1), 20e9, 2e5))  # lower PSNR, but after the longer run
    low = Individual(g[1], (tiered_psnr(30.0, 0), 20e9, 2e5))
    cheap = Individual(g[2], (tiered_psnr(28.0, 0), 5e9, 5e4))
    assert high.fitness.dominates(low.fitness) and not low.fitness.dominates(high.fitness)
    assert {i.genome.key for i in sel_nsga2([high, low, cheap], 2)} == {g[0].key, g[2].key}
    # min_psnr is checked on the rung's PSNR, not on the tiered value
    assert constraint_violation((tiered_psnr(25.0, 1), 1e9, 1e3), Constraints(min_psnr=26.0)) > 0


def test_journal_and_front_at_each_models_highest_rung(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    old = {k: v for k, v in line(7, 29.0, 8, 80).items() if k != "rung"}  # a journal line from before fidelity
    for r in (
        JournalRecord.from_json(old),
        record(0, 30.0, 10, 100, steps=2),
        record(1, 31.0, 20, 200, steps=2),
        record(0, 30.4, 10, 100, rung=1, steps=4),
        record(1, 0.0, 20, 200, rung=1, status="failed"),
    ):
        journal.append(r)
    latest = {name(r): r for r in journal.latest().values()}
    assert latest["k7"].psnr == 29.0 and (latest["k0"].rung, latest["k0"].psnr) == (1, 30.4)
    assert latest["k1"].status == STATUS_OK and latest["k1"].rung == 0  # a failed promotion keeps rung 0
    assert latest["k7"].rung is None and rung_of(latest["k7"]) == 0
    assert {(name(r), rung_of(r)) for r in journal.by_rung().values()} == {
        ("k7", 0),
        ("k0", 0),
        ("k1", 0),
        ("k0", 1),
        ("k1", 1),
    }
    front = pareto_records(list(latest.values()), None)
    assert [name(r) for r in front] == ["k7", "k0"]  # k1 (rung 0, 31 dB) is behind k0 (rung 1, 30.4 dB)
    table = markdown_table(front)
    assert "| rung (steps) |" in table and "| 1 (4) |" in table and "not comparable" in table


def test_the_mult_adds_floor():
    assert constraint_violation((30.0, 20e9, 1e5), Constraints(min_mult_adds=40e9)) == pytest.approx(0.5)
    assert constraint_violation((30.0, 50e9, 1e5), Constraints(min_mult_adds=40e9)) == 0.0
    with pytest.raises(ValueError, match="min_mult_adds=5e\\+10 is above max_mult_adds=4e\\+10"):
        SearchSettings(constraints={"min_mult_adds": 50e9, "max_mult_adds": 40e9})


@pytest.mark.parametrize(
    "rungs, eta, fragment",
    [
        ([4, 2], 2, "rungs=[4,2]: rungs are training steps, positive and strictly increasing"),
        ([2, 2], 2, "strictly increasing"),
        ([0, 2], 2, "positive"),
        ([2], 2, "give two or more rungs"),
        ([2, 4], 1, "search.fidelity.eta=1: use an integer >= 2"),
    ],
)
def test_bad_fidelity_options(rungs, eta, fragment):
    with pytest.raises(ValueError, match=None) as err:
        Fidelity(rungs=rungs, eta=eta)
    assert fragment in str(err.value)
    assert not Fidelity().enabled and Fidelity(rungs=[100, 300]).enabled


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("search", overrides=["+search=nsga2", *overrides])


def test_every_job_runs_one_schedule_with_an_epoch_end_on_every_rung():
    """budget=search (1000 steps, warm-up 50, batch 8), rungs [100, 300]: epochs of 100 steps, warmup_cosine
    over 300 steps, a last checkpoint kept."""
    job = compose_job()
    assert job_overrides(Fidelity(rungs=[100, 300], eta=2), job) == [
        "data.samples_per_epoch=800",
        "trainer.check_val_every_n_epoch=1",
        "trainer.max_epochs=-1",
        "callbacks.model_checkpoint.save_last=true",
        "scheduler.total_steps=300",
    ]
    assert "scheduler.total_steps=300" not in job_overrides(
        Fidelity(rungs=[100, 300]), compose_job("scheduler=constant")
    )


def test_a_rung_beyond_the_budget_or_inside_the_warmup_is_one_line():
    from falsr.errors import UserError

    with pytest.raises(UserError, match=r"rung 2000 is beyond the budget's trainer.max_steps=1000"):
        job_overrides(Fidelity(rungs=[100, 2000]), compose_job())
    with pytest.raises(UserError, match=r"rung 0 \(20 steps\) ends inside the schedule's warm-up"):
        job_overrides(Fidelity(rungs=[20, 300]), compose_job())
    with pytest.raises(UserError, match=r"counts training steps, and this budget counts epochs"):
        job_overrides(Fidelity(rungs=[100, 300]), compose_job("budget=incomplete"))


# -- real tiny searches --------------------------------------------------------------------------------------

RUNGS = [2, 4]
POPULATION, GENERATIONS = 4, 1


def tiny_args(data: Path) -> list[str]:
    """A tiny job: 4 steps at most (the last rung), 32px patches, batch 4, a 1-step warm-up."""
    return [
        f"paths.data_dir={data}",
        f"data.train_dir={data}/train/T4",
        "data.holdout=0",
        "data.val_sets=[Tiny]",
        "trainer.max_steps=4",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        "scheduler.warmup_steps=1",
    ]


def search_args(data: Path, sweep: Path, *extra: str) -> list[str]:
    return [
        "+search=nsga2",
        *tiny_args(data),
        f"search.settings.population_size={POPULATION}",
        f"search.generations={GENERATIONS}",
        "search.fidelity.rungs=[2,4]",
        "search.fidelity.eta=2",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def pairs(records: list[dict]) -> list[tuple[str, int]]:
    return [(r["key"], r.get("rung", 0)) for r in records]


@pytest.fixture(scope="module")
def fidelity_search(tiny_data, tmp_path_factory):
    """The uninterrupted tiny multi-fidelity search: the reference of the resume test."""
    tmp = tmp_path_factory.mktemp("fidelity")
    sweep = tmp / "sweep"
    proc = run(search_args(tiny_data, sweep), tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, proc


@pytest.mark.slow
def test_tiny_search_promotes_from_checkpoints(fidelity_search, tiny_data, tmp_path):
    sweep, proc = fidelity_search
    records = journal(sweep)
    assert len(pairs(records)) == len(set(pairs(records)))  # every (candidate, rung) once
    rung0 = {r["key"]: r for r in records if r["rung"] == 0 and r["status"] == STATUS_OK}
    rung1 = [r for r in records if r["rung"] == 1]
    assert rung0 and rung1 and all(r["status"] == STATUS_OK for r in rung1)
    assert all(r["steps"] == RUNGS[0] and r["resumed_from"] is None for r in rung0.values())
    ok0 = 0
    for generation in range(GENERATIONS + 1):  # ASHA at eta 2: half of what rung 0 holds so far, floor
        ok0 += sum(r["generation"] == generation for r in rung0.values())
        promoted = [r for r in rung1 if r["promoted_in"] <= generation]
        assert len(promoted) >= ok0 // 2
    for r in rung1:  # continued from that candidate's own rung-0 checkpoint, to the second rung
        assert r["steps"] == RUNGS[1] and r["key"] in rung0
        # its curve goes on from rung 0's: the earlier points, the one it starts from, then its own
        val, val0 = r["curve"]["val"], rung0[r["key"]]["curve"]["val"]
        assert val0["steps"] == [RUNGS[0]] and val["steps"] == RUNGS
        assert val["psnr"][0] == pytest.approx(val0["psnr"][0], abs=1e-3)
        assert Path(r["resumed_from"]) == Path(rung0[r["key"]]["last_ckpt"]).resolve()
        assert Path(r["resumed_from"]).parent.parent == Path(rung0[r["key"]]["run_dir"]).resolve()
    pareto = json.loads((sweep / "pareto.json").read_text())
    top = {r["key"]: r["rung"] for r in rung1} | {k: 0 for k in rung0 if k not in {r["key"] for r in rung1}}
    assert pareto["front"] and all(r["rung"] == top[r["key"]] for r in pareto["front"])  # each at its highest rung
    assert "| rung (steps) |" in (sweep / "pareto.md").read_text()
    assert "promoting" in proc.stdout + proc.stderr and "at each model's highest rung" in proc.stdout + proc.stderr

    # Continuing is meaningful: a promoted run ends exactly where one 4-step run of the same schedule ends.
    r = rung1[0]
    single = run(
        [
            "model=genome",
            f"model.genome={r['genome']}",
            *tiny_args(tiny_data),
            "budget=search",
            "logger=none",
            "data.samples_per_epoch=8",
            "scheduler.total_steps=4",
            "module.cost_lr_size=[480,480]",
            f"hydra.run.dir={tmp_path / 'single'}",
        ],
        tmp_path,
        script="train.py",
    )
    assert single.returncode == 0, single.stderr[-3000:]
    metrics = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert metrics["steps"] == RUNGS[1] and metrics["psnr"] == pytest.approx(r["psnr"], abs=1e-6)
    # and so does its curve: the same loss points (its open window went on in the checkpoint), the same last point
    assert r["curve"]["loss"]["steps"] == metrics["curve"]["loss"]["steps"]
    assert r["curve"]["loss"]["values"] == pytest.approx(metrics["curve"]["loss"]["values"], abs=1e-6)
    assert r["curve"]["val"]["psnr"][-1] == pytest.approx(metrics["curve"]["val"]["psnr"][-1], abs=1e-6)


def kill_when(args: list[str], sweep: Path, tmp: Path, done: str) -> None:
    """Run a search (basic launcher) that SIGKILLs itself right after the journal append after which ``done``
    holds (a Python expression on the journal's ``records``; tests/search_killed.py): a kill at a journal count,
    not at a time."""
    proc = subprocess.run(
        [sys.executable, "tests/search_killed.py", *args],
        cwd=REPO,
        env={**env_for(tmp), "FALSR_TEST_KILL_WHEN": done},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.mark.slow
def test_sigkill_during_a_promotion_then_resume(fidelity_search, tiny_data, tmp_path):
    """Killed once generation 1's promotions have started (the trigger: a journal count, the second rung-1 record),
    resumed: no (candidate, rung) trained twice, and the journal holds exactly the uninterrupted search's."""
    reference = journal(fidelity_search[0])
    total_rung1 = sum(r["rung"] == 1 for r in reference)
    assert total_rung1 >= 3  # gen 0 promotes, then gen 1 promotes more than one: a kill between them is possible
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep)
    kill_when(args, sweep, tmp_path, "sum(r.get('rung') == 1 for r in records) >= 2")
    before = journal(sweep)
    assert sum(r["rung"] == 1 for r in before) == 2 < total_rung1, pairs(before)  # killed mid-promotions

    resumed = run(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = journal(sweep)
    assert records[: len(before)] == before  # nothing finished was trained again
    assert len(pairs(records)) == len(set(pairs(records)))
    assert sorted(pairs(records)) == sorted(pairs(reference))
    assert json.loads((sweep / "pareto.json").read_text())["front"]
    job_dirs = [r["run_dir"] for r in records if r.get("run_dir")]
    assert len(job_dirs) == len(set(job_dirs))

    # resumed with other fidelity options: one line naming the ones it ran with
    again = run(args[:-1] + ["search.fidelity.eta=3", f"search.resume={sweep}"], tmp_path, timeout=120)
    last = again.stderr.strip().splitlines()[-1]
    assert again.returncode == 2 and "search.fidelity.rungs=[2,4] search.fidelity.eta=2" in last, again.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("redraw", [False, True])
def test_the_mult_adds_floor_in_a_search(tiny_data, tmp_path, redraw):
    """Under constraints.min_mult_adds, nothing below the floor is trained: with redraw_out_of_bounds off such a
    proposal is journaled with its status and why; with it on (the default) it is drawn again and never journaled."""
    sweep = tmp_path / "sweep"
    floor = 20e9
    args = [
        "+search=nsga2",
        *tiny_args(tiny_data),
        f"search.settings.population_size={POPULATION}",
        "search.generations=0",
        f"search.settings.constraints.min_mult_adds={floor}",
        f"search.settings.redraw_out_of_bounds={redraw}",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = journal(sweep)
    under = [r for r in records if r["status"] == STATUS_UNDER_FLOOR]
    if redraw:
        assert not under and len([r for r in records if r["status"] == STATUS_OK]) == POPULATION
    else:
        assert under and all(
            r["mult_adds"] < floor and "under the floor 20.0G" in r["error"] and r.get("job_num") is None for r in under
        )
    assert all(r["mult_adds"] >= floor for r in records if r["status"] == STATUS_OK)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["search.fidelity.rungs=[300,100]"],
            "search.fidelity.rungs=[300,100]: rungs are training steps, positive and strictly increasing",
        ),
        (["search.fidelity.rungs=[100,300]", "search.fidelity.eta=1"], "search.fidelity.eta=1: use an integer >= 2"),
        (["search.fidelity.rungs=[100,3000]"], "rung 3000 is beyond the budget's trainer.max_steps=1000"),
        (
            ["search.settings.constraints.min_mult_adds=50e9", "search.settings.constraints.max_mult_adds=40e9"],
            "min_mult_adds=5e+10 is above max_mult_adds=4e+10",
        ),
    ],
)
def test_bad_options_are_one_line(args, fragment, tmp_path):
    proc = run(["+search=nsga2", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and fragment in proc.stderr, proc.stderr


def test_hypervolume_history_counts_a_promotion_from_the_generation_it_ran_in():
    from falsr.search.hydra_glue import hypervolume_history

    search = compose_job("search.hypervolume_box.psnr_min=25").search
    base = [record(0, 30.0, 10, 100), record(1, 31.0, 20, 200)]
    promoted = record(1, 29.0, 20, 200, rung=1, promoted_in=1)  # generation 0's candidate, promoted in generation 1
    history = hypervolume_history(base + [promoted], search, 1)
    before = hypervolume_history(base, search, 0)
    assert history[0] == before[0]  # generation 0 saw rung 0 only
    assert history[1][2] == 2 and history[1][1] != history[0][1]  # then the rung-1 PSNR (29 dB) replaced 31 dB


def test_a_job_claims_its_candidate_at_its_rung(tmp_path):
    """The claim lock is per (candidate, rung): a promotion never waits on its own rung-0 job's lock, while a second
    job of the same (candidate, rung) does."""
    import fcntl

    from falsr.search.callbacks import CLAIMS_DIR, claim_candidate

    first = claim_candidate(tmp_path, "abc", 0)
    promoted = claim_candidate(tmp_path, "abc", 1)  # would block forever if it shared rung 0's lock
    assert sorted(p.name for p in (tmp_path / CLAIMS_DIR).iterdir()) == ["abc.lock", "abc.r1.lock"]
    other = os.open(tmp_path / CLAIMS_DIR / "abc.r1.lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    for fd in (first, promoted, other):
        os.close(fd)
