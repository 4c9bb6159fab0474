"""End-to-end searches: real (tiny) training jobs through Hydra launchers, journal, reports, W&B, resume.

Budgets are tiny (3 training steps on 32x32 patches of 4 T91 images, one 128x128 validation image):
these tests check the machinery, not the quality of the front.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from falsr.search.generation import new_search, propose
from falsr.search.hydra_glue import search_settings, toolbox_config
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # end to end through the scripts: `pytest -m "not slow"` skips them
POPULATION, GENERATIONS = 4, 1  # the initial population and one more generation: 8 candidates
# DEAP's own two-point crossover in place of Eq. 4 (swapped from the command line): the reference search
# and its resume run with an operator that draws from Python's global `random`.
DEAP_MATE = "search.toolbox.mate._target_=deap.tools.cxTwoPoint"


def search_args(data: Path, sweep: Path, *extra: str, algorithm: str = "nsga2") -> list[str]:
    return [
        f"+search={algorithm}",
        f"paths.data_dir={data}",
        f"data.train_dir={data}/train/T4",
        "data.holdout=0",
        "data.val_sets=[Tiny]",
        "trainer.max_steps=3",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        f"search.settings.population_size={POPULATION}",
        f"search.generations={GENERATIONS}",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def env_for(tmp: Path) -> dict:
    return {**os.environ, "FALSR_CACHE_DIR": str(tmp / "cache"), "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}


def run_search(args: list[str], tmp: Path, script: str = "search.py", timeout: int = 600):
    return subprocess.run(
        [sys.executable, script, *args], cwd=REPO, env=env_for(tmp), capture_output=True, text=True, timeout=timeout
    )


def journal(sweep: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep / "journal.jsonl").read_text().splitlines() if line.strip()]


def check_outputs(sweep: Path) -> list[dict]:
    records = journal(sweep)
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == POPULATION * (GENERATIONS + 1), keys  # every genome once
    trained = [r for r in records if r["status"] == "ok"]
    assert trained and all(np.isfinite(r["psnr"]) and r["run_dir"] for r in trained)
    pareto = json.loads((sweep / "pareto.json").read_text())
    assert pareto["front"] and {r["key"] for r in pareto["front"]} <= {r["key"] for r in trained}
    assert "\n| model | mult-adds | params | PSNR/SSIM | vs bicubic |" in (sweep / "pareto.md").read_text()
    for name in ("front_psnr_vs_mult_adds.png", "front_psnr_vs_params.png", "front_params_vs_mult_adds.png"):
        assert (sweep / name).stat().st_size > 1000
    assert (sweep / "search_state.pt").is_file()
    return records


@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory):
    """One search with the basic launcher, W&B (offline) and DEAP's cxTwoPoint: the reference for the resume test."""
    tmp = tmp_path_factory.mktemp("basic")
    sweep = tmp / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "logger=wandb", DEAP_MATE), tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, proc


def test_search_with_basic_launcher_and_wandb(baseline):
    sweep, proc = baseline
    records = check_outputs(sweep)
    trained = [r for r in records if r["status"] == "ok"]
    # One offline W&B run per trained candidate, in its own job folder; one run for the search itself.
    for r in trained:
        runs = list((Path(r["run_dir"]) / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, r["run_dir"]
    assert list((sweep / "wandb").glob("offline-run-*-search-*"))
    out = proc.stdout + proc.stderr  # Hydra logs to the console (stdout)
    assert "generation 1 done" in out and "hypervolume" in out and "[gen 1]" in out


def test_search_with_joblib_launcher(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_outputs(sweep)


def test_search_with_submitit_local_launcher(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(
        search_args(tiny_data, sweep, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"), tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_outputs(sweep)


def trained(records: list[dict], generation: int) -> int:
    return sum(r.get("job_num") is not None and r["generation"] == generation for r in records)


# kill_when's condition: n candidates of the generation trained (journaled by their job, not over the cap).
TRAINED = "sum(r.get('job_num') is not None and r['generation'] == {generation} for r in records) >= {n}"


def kill_when(args: list[str], sweep: Path, tmp: Path, done: str) -> None:
    """Run a search (basic launcher) that SIGKILLs itself right after the journal append after which ``done``
    holds (a Python expression on the journal's ``records``; tests/search_killed.py): a kill at a journal count,
    not at a time, so no other job can finish in between however fast the machine."""
    proc = subprocess.run(
        [sys.executable, "tests/search_killed.py", *args],
        cwd=REPO,
        env={**env_for(tmp), "FALSR_TEST_KILL_WHEN": done},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def test_sigkill_mid_generation_then_resume(tiny_data, baseline, tmp_path):
    """Killed in the initial generation and again in the next one (DEAP's cxTwoPoint in the loop), resumed
    twice: the journal is the uninterrupted search's, and nothing finished is trained again."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, DEAP_MATE)
    kill_when(args, sweep, tmp_path, TRAINED.format(generation=0, n=2))
    before = journal(sweep)
    assert 2 <= len(before) < POPULATION and trained(before, 0) == 2
    kill_when(args + [f"search.resume={sweep}"], sweep, tmp_path, TRAINED.format(generation=1, n=1))
    middle = journal(sweep)
    assert middle[: len(before)] == before and POPULATION < len(middle) < POPULATION * (GENERATIONS + 1)
    assert trained(middle, 1) == 1

    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = check_outputs(sweep)
    assert records[: len(middle)] == middle  # finished candidates were not trained again
    # The same random streams: the resumed search proposes exactly the genomes of the uninterrupted one,
    # in the same order, made by the same operators.
    reference = journal(baseline[0])
    same = ("key", "genome", "generation", "origin", "status")
    assert [{k: r[k] for k in same} for r in records] == [{k: r[k] for k in same} for r in reference]
    assert any(r["origin"].startswith("cxTwoPoint+") for r in records)


def test_swapping_a_deap_mutation_from_the_command_line(tiny_data, baseline, tmp_path):
    """mutFlipBit on the connection bits in place of the hybrid mutation: the same initial population as the
    reference, then other offspring, every one made by mutFlipBit with the reference's cells unmutated."""
    sweep = tmp_path / "sweep"
    proc = run_search(
        search_args(
            tiny_data,
            sweep,
            DEAP_MATE,
            "search.toolbox.mutate._target_=deap.tools.mutFlipBit",
            "+search.toolbox.mutate.indpb=0.2",
            "search.toolbox.mutate.genes=connections",
        ),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records, reference = check_outputs(sweep), journal(baseline[0])
    assert [r["key"] for r in records if r["generation"] == 0] == [r["key"] for r in reference if r["generation"] == 0]
    children = [r for r in records if r["generation"] == 1]
    assert {r["key"] for r in children}.isdisjoint(r["key"] for r in reference if r["generation"] == 1)
    assert {r["origin"] for r in children} <= {"cxTwoPoint+mutFlipBit", "copy+mutFlipBit", "random"}
    assert any(r["origin"].endswith("+mutFlipBit") for r in children)
    # cells only come from cxTwoPoint here: each child's cells are cells of the single-cell initial models
    initial_cells = {Genome.from_string(r["genome"]).cells[0] for r in records if r["generation"] == 0}
    for r in children:
        if r["origin"] != "random":
            assert set(Genome.from_string(r["genome"]).cells) <= initial_cells


@pytest.mark.parametrize("algorithm", ["nsga3", "spea2", "random"])
def test_other_algorithms_run_end_to_end(algorithm, tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, algorithm=algorithm), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = check_outputs(sweep)
    origins = {r["origin"] for r in records if r["generation"] == 1}
    if algorithm == "random":
        assert origins <= {"copy+uniform", "random"}
        assert not all(len(set(Genome.from_string(r["genome"]).cells)) == 1 for r in records if r["generation"] == 0)
    else:
        assert any(o.startswith(("cx_eq4+", "copy+")) for o in origins)
    out = proc.stdout + proc.stderr
    expected = {
        "nsga3": "survive=falsr.search.nsga.on_log_costs",
        "spea2": "survive=falsr.search.nsga.on_log_costs",
        "random": "mutate=falsr.search.operators.mut_uniform",
    }[algorithm]
    assert expected in out


FAULTY_APP = """
import os, sys
import hydra
from omegaconf import open_dict
from falsr.cli import CONF_DIR
from falsr.training.train import train

@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg):
    key = cfg.get("candidate", {}).get("key")
    if key == os.environ["NAN_KEY"]:
        return {**train(cfg), "psnr": float("nan")}     # training "diverged"
    if key == os.environ["CRASH_KEY"] or os.environ["CRASH_KEY"] == "all":
        raise RuntimeError("injected crash")             # the job itself dies
    return train(cfg)

if __name__ == "__main__":
    main()
"""


def test_failed_candidates_are_recorded_and_the_search_goes_on(tiny_data, tmp_path):
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = compose("search", overrides=["+search=nsga2", f"search.settings.population_size={POPULATION}"]).search
    settings = search_settings(search)
    first = [
        o.genome
        for o in propose(new_search(settings, seed=0, toolbox=toolbox_config(search)))
        if genome_cost(o.genome).mult_adds <= settings.constraints.max_mult_adds
    ]
    nan_key, crash_key = first[0].key, first[1].key
    app = tmp_path / "faulty_search.py"
    app.write_text(FAULTY_APP)
    sweep = tmp_path / "sweep"
    env = {**env_for(tmp_path), "NAN_KEY": nan_key, "CRASH_KEY": crash_key}
    proc = subprocess.run(
        [sys.executable, str(app), *search_args(tiny_data, sweep)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_key = {r["key"]: r for r in check_outputs(sweep)}
    assert by_key[nan_key]["status"] == "failed" and "NaN" in by_key[nan_key]["error"]
    assert by_key[crash_key]["status"] == "failed" and "injected crash" in by_key[crash_key]["error"]
    front = json.loads((sweep / "pareto.json").read_text())["front"]
    assert nan_key not in {r["key"] for r in front} and crash_key not in {r["key"] for r in front}


def test_a_search_where_every_candidate_failed_exits_non_zero(tiny_data, tmp_path):
    app = tmp_path / "faulty_search.py"
    app.write_text(FAULTY_APP)
    sweep = tmp_path / "sweep"
    env = {**env_for(tmp_path), "NAN_KEY": "-", "CRASH_KEY": "all"}
    proc = subprocess.run(
        [sys.executable, str(app), *search_args(tiny_data, sweep, "search.generations=0")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: every candidate failed") and "injected crash" in last, proc.stderr[-2000:]
    assert all(r["status"] in ("failed", "over_mult_adds_cap") for r in journal(sweep))


def test_full_training_of_the_chosen_models(tiny_data, tmp_path):
    """search.full_train=true: the models chosen by crowding distance are trained through the same launcher."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, "search.generations=0", "search.report_k=2", "search.full_train=true")
    proc = run_search(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = json.loads((sweep / "pareto.json").read_text())["chosen_for_full_training"]
    full = json.loads((sweep / "full_training.json").read_text())
    assert 1 <= len(chosen) <= 2 and [r["genome"] for r in full] == chosen
    assert all(r["status"] == "ok" and np.isfinite(r["psnr"]) for r in full)
    assert len(journal(sweep)) == POPULATION  # full-training jobs are not search candidates


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "no search settings: run `python search.py +search=nsga2`"),
        (["+search=nsga2", "search.settings.crowding=foo"], "crowding='foo'"),
        (["+search=nsga2", "search.settings.populaton_size=3"], "Key 'populaton_size' not in 'SearchSettings'"),
        (["+search=nsga2", "search.resume=/nonexistent/sweep"], "no such sweep folder"),
        (["+search=nsga2", "trainer.max_steps=1,2"], "give single values only"),
        (
            ["+search=nsga2", "search.toolbox.mate._target_=deap.tools.cxNoSuchThing"],
            "search.toolbox.mate: Error locating target 'deap.tools.cxNoSuchThing'",
        ),
        (
            ["+search=nsga2", "search.toolbox.mutate._target_=deap.tools.mutFlipBit"],
            "missing a required argument: 'indpb'",
        ),
        (["+search=nsga2", "search.settings.p_random_mutation=0.9"], "must not exceed 1"),
        # The data a job would read is checked before any job is launched (no candidate is trained).
        (
            ["+search=nsga2", "paths.data_dir=/nonexistent/data"],
            "training HR image folder /nonexistent/data/train/T91 not found",
        ),
        (["+search=nsga2", "data.patch_size=4096"], "smaller than the HR patch data.patch_size=4096"),
        (["+search=nsga2", "data.val_sets=[NoSuchSet]"], "NoSuchSet not found"),
    ],
)
def test_search_user_errors_are_one_line(args, fragment, tmp_path):
    proc = run_search(args + [f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and fragment in proc.stderr, proc.stderr


def test_search_with_weight_inheritance_and_predictor_prescreening(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(
        search_args(
            tiny_data,
            sweep,
            "search.generations=2",
            "search.inherit=true",
            "search.settings.prescreen_factor=3",
            "search.settings.prescreen_min_trained=4",
        ),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = journal(sweep)
    by_key = {r["key"]: r for r in records}
    trained = [r for r in records if r["status"] == "ok"]
    assert trained and all(Path(r["weights"]).is_file() for r in trained)  # every candidate can be a parent
    children = [r for r in trained if r["generation"] >= 1 and r["parents"]]
    assert children and any(r["inherited_fraction"] > 0 for r in children)
    for r in children:  # what a child inherited came from its own parents' weights, primary first
        parent_weights = [
            str(Path(by_key[p]["weights"]).resolve()) for p in r["parents"] if by_key.get(p, {}).get("weights")
        ]
        assert set(r["inherited_from"]) <= set(parent_weights)
        lineage = {
            str(Path(by_key[p]["weights"]).resolve()): 3 + by_key[p]["inherited_steps"]
            for p in r["parents"]
            if by_key.get(p, {}).get("weights")
        }  # 3 steps of its own plus what it had inherited
        assert r["inherited_steps"] == max((lineage[w] for w in r["inherited_from"]), default=0)
    assert all(r["inherited_fraction"] == 0 for r in trained if r["generation"] == 0)
    # Generation 1 is the first with >= 4 evaluated genomes: pre-screened from then on, its quality journaled.
    assert all(r["predicted_psnr"] is not None for r in records if r["generation"] >= 1 and r["status"] == "ok")
    lines = [json.loads(line) for line in (sweep / "predictor.jsonl").read_text().splitlines()]
    assert [entry["generation"] for entry in lines] == [1, 2] and all(-1 <= e["tau"] <= 1 for e in lines)
    assert "predictor on the" in proc.stdout + proc.stderr


def test_the_searchs_lr_size_is_the_cost_of_journal_selection_and_pareto_alike(tiny_data, tmp_path):
    """search.settings.lr_size=[96,128]: the jobs report their mult-adds at it (journal), the cap and the
    selection use it, and pareto.json shows it; nothing is at the 480x480 default."""
    sweep = tmp_path / "sweep"
    proc = run_search(
        search_args(tiny_data, sweep, "search.settings.lr_size=[96,128]", "search.generations=0"), tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = [r for r in journal(sweep) if r["status"] == "ok"]
    assert trained
    for r in trained:
        assert r["mult_adds"] == genome_cost(r["genome"], (96, 128)).mult_adds != genome_cost(r["genome"]).mult_adds
    front = json.loads((sweep / "pareto.json").read_text())["front"]
    assert front and all(r["mult_adds"] == genome_cost(r["genome"], (96, 128)).mult_adds for r in front)


@pytest.mark.parametrize(
    "space_overrides, space",
    [
        (["space.n_cells=5"], {"n_cells": 5}),
        (["space.channels=[16,32,48,64,96]"], {"channels": (16, 32, 48, 64, 96)}),
    ],
    ids=["5_cells", "extra_width"],
)
def test_search_in_a_configured_space(tiny_data, tmp_path, space_overrides, space):
    """The space group reaches the operators, the controller, every job's builder and the cost model alike: each
    journaled genome reads in that space, and its job's parameter count is the space's analytic cost of it."""
    from falsr.space.genome import SearchSpace, using_space

    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, *space_overrides), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = check_outputs(sweep)
    with using_space(SearchSpace(**space)) as configured:
        genomes = [Genome.from_string(r["genome"]) for r in records]
        assert all(g.n_cells == configured.n_cells for g in genomes)
        for r, g in zip(records, genomes):
            if r["status"] == "ok":
                assert r["params"] == genome_cost(g).params, r["genome"]
        widths = {c.channels for g in genomes for c in g.cell_specs}
    assert widths <= set(configured.channels)
    if "n_cells" in space:  # resumed in another space (the default one): a one-line error naming the space to use
        again = run_search(search_args(tiny_data, sweep, f"search.resume={sweep}"), tmp_path)
        last = again.stderr.strip().splitlines()[-1]
        assert again.returncode == 2 and last.startswith("error: search.resume=") and "space.n_cells=5" in last, (
            again.stderr[-2000:]
        )


def test_search_ranks_by_the_extrapolated_curve(tiny_data, tmp_path):
    """search.estimator=extrapolated: each trained candidate is ranked by its held-out curve extrapolated to
    search.estimate_at steps, the measured PSNR kept beside it; pareto.md says so. final (the default): measured."""
    dense = [
        "search.estimator=extrapolated",
        "trainer.max_steps=8",
        "data.samples_per_epoch=32",
        "callbacks.learning_curve.val_steps=[2,4,6]",
        "search.generations=0",
        "search.estimate_at=100",
    ]
    sweep = tmp_path / "x"
    proc = run_search(search_args(tiny_data, sweep, *dense), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok = [r for r in journal(sweep) if r["status"] == "ok"]
    assert ok and all(r["estimator"] == "held-out PSNR extrapolated to 100 steps" for r in ok)
    assert all(r["curve"]["val"]["steps"] == [2, 4, 6, 8] for r in ok)
    from falsr.training.curves import extrapolate

    assert all(r["psnr"] == extrapolate(r["curve"], 100) and r["psnr"] >= r["curve"]["val"]["psnr"][-1] - 3 for r in ok)
    assert "extrapolated to 100 steps" in (sweep / "pareto.md").read_text()
    sweep = tmp_path / "f"
    proc = run_search(search_args(tiny_data, sweep, *dense[1:]), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all("measured_psnr" not in r and "estimator" not in r for r in journal(sweep))
    bad = run_search(search_args(tiny_data, tmp_path / "b", "search.estimator=median"), tmp_path)
    assert bad.returncode != 0 and "search.estimator='median'" in bad.stderr and "Traceback" not in bad.stderr
