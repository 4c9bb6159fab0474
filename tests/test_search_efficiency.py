"""bench/search_efficiency.py at equal CPU time with the objective that ranks (issue 22, item 5): the search's own
evaluator (budget=search, the held-out curve extrapolated), at a toy budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
# budget=search cut to 8 steps of batch 4 with four curve points: enough for the power law to be fitted.
TOY = [
    "trainer.max_steps=8",
    "data.samples_per_epoch=32",
    "data.batch_size=4",
    "callbacks.learning_curve.val_steps=[2,4,6]",
    "scheduler.warmup_steps=2",
]


def _run(args, data_dir, timeout=900):
    env = {**os.environ, "FALSR_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO / "src"), "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "bench/search_efficiency.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_equal_cpu_time_on_the_ranked_objective_stores_resumes_and_reports(data_dir, tmp_path):
    store = tmp_path / "eff.jsonl"
    args = [
        "--cpu-budget",
        "12",
        "--objective",
        "ranked",
        "--objective-overrides",
        *TOY,
        "--population",
        "4",
        "--cells",
        "3",
        "--seeds",
        "1",
        "--methods",
        "random,hybrid",
        "--store",
        str(store),
    ]
    first = _run(args, data_dir)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    runs = [json.loads(line) for line in store.read_text().splitlines()]
    assert sorted(r["method"] for r in runs) == ["hybrid", "random"] and len({r["config"] for r in runs}) == 2
    for run in runs:
        assert run["clock"] >= 12  # ran until its CPU budget was spent
        # and no further: only the last candidate may end past the budget (none starts after it)
        assert all(h["clock"] < 12 for h in run["history"][:-1])
        ok = [h for h in run["history"] if h["status"] == "ok"]
        assert ok and all("measured_psnr" in h for h in ok)
    # the search ranks by the extrapolated curve, the measured PSNR beside it: they differ where the fit took
    ok = [h for r in runs for h in r["history"] if h["status"] == "ok"]
    assert any(abs(h["psnr"] - h["measured_psnr"]) > 1e-6 for h in ok)
    report = store.with_suffix(".md").read_text()
    assert report.startswith("# bench/search_efficiency.py --cpu-budget 12 --objective ranked")
    assert "RANKED: the search's evaluator" in report and "trainer.max_steps=8" in report
    # resumable: a rerun trains nothing
    again = _run(args, data_dir)
    assert again.returncode == 0 and "0 runs to do" in again.stdout
    assert len(store.read_text().splitlines()) == 2
    # a run killed before it was stored replays its trainings from the disk cache beside the store: the same
    # genomes in the same order, each charged the seconds it took then, none trained again
    cache = [json.loads(line) for line in store.with_suffix(".cache.jsonl").read_text().splitlines()]
    assert len(cache) == len({h["key"] for h in ok}) and all(c["identity"] == runs[0]["machine"] for c in cache)
    killed = tmp_path / "killed.jsonl"
    store.with_suffix(".cache.jsonl").rename(killed.with_suffix(".cache.jsonl"))
    replay = _run([*args[:-1], str(killed)], data_dir)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    replayed = {r["method"]: r["history"] for r in map(json.loads, killed.read_text().splitlines())}
    for run in runs:
        before, after = run["history"][:-1], replayed[run["method"]]  # the last may differ: search seconds vary
        assert [h["key"] for h in after[: len(before)]] == [h["key"] for h in before]
        assert all(a["cached"] and a["seconds"] == b["seconds"] for a, b in zip(after, before, strict=False))
    # a method added to the comparison runs beside the stored ones (each run is keyed on its own method's settings)
    wider = _run([*args[:-3], "random,hybrid,nsga2", "--store", str(killed)], data_dir)
    assert wider.returncode == 0 and "1 runs to do (2 stored" in wider.stdout, wider.stderr[-2000:]
    assert "NSGA-II" in killed.with_suffix(".md").read_text()
    # each run names its machine; runs of another machine are neither resumed into nor reported beside
    assert all(r["machine"]["cpu"] and r["machine"]["isa"] for r in runs)
    assert "Machine: " in report
    runs[0]["machine"] = {**runs[0]["machine"], "cpu": "another CPU"}
    store.write_text("".join(json.dumps(r) + "\n" for r in runs))
    for extra in ([], ["--report"]):
        mixed = _run([*args, *extra], data_dir, 300)
        assert mixed.returncode == 1
        last = mixed.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {store} holds runs of this configuration from another machine (")
        assert "another CPU" in last and last.endswith("use another --store for this machine")


def test_an_unknown_timed_objective_is_a_one_line_error(data_dir, tmp_path):
    done = _run(["--cpu-budget", "5", "--objective", "proxy", "--store", str(tmp_path / "x.jsonl")], data_dir, 300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --cpu-budget measures real training time: use --objective real, ranked, final"
    )


def test_the_final_objective_trains_what_budget_search_trains():
    """The "final" objective spells budget=search out on budget=search_p300 (its stored runs keep their meaning if
    the default changes): composed, the two train the same schedule on the same data."""
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR

    sys.path.insert(0, str(REPO / "bench"))
    import _objectives

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = compose("train", overrides=["budget=search", "paths.output_dir=out"])
        final = compose("train", overrides=["budget=search_p300", *_objectives.FINAL_RECIPE, "paths.output_dir=out"])
    for part in ("trainer", "data", "scheduler", "optimizer", "module", "model", "callbacks"):
        assert OmegaConf.to_container(final[part], resolve=True) == OmegaConf.to_container(
            search[part], resolve=True
        ), part


@pytest.mark.parametrize(
    "name, options",
    [
        # the --objective real runs keep their id as settings are added (bench/_timed_efficiency.ADDED_OFF)
        (
            "real",
            [
                *("--cpu-budget", "240", "--methods", "random,nsga2,hybrid,inherit,predictor,inherit_predictor"),
                *("--search-overrides", "search.settings.redraw_out_of_bounds=false"),
            ],
        ),
        # the first three methods' runs were stored with the id of their method set (before per-method ids), the
        # inheritance runs with their own method's id: one report reads both
        ("ranked", ["--cpu-budget", "1200", "--methods", "random,hybrid,predictor,inherit,inherit_predictor"]),
        ("final", ["--cpu-budget", "1200", "--methods", "hybrid,predictor"]),
    ],
)
def test_a_committed_report_regenerates_from_its_store(name, options, data_dir, tmp_path):
    """--report rewrites the committed report from the committed runs, word for word, training nothing."""
    committed = REPO / "bench" / "results" / f"search_efficiency_{name}"
    store = tmp_path / f"search_efficiency_{name}.jsonl"
    store.write_text(committed.with_suffix(".jsonl").read_text())
    args = ["--objective", name, "--population", "8", "--seeds", "3", *options, "--store", str(store), "--report"]
    done = _run(args, data_dir, 600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert store.with_suffix(".md").read_text() == committed.with_suffix(".md").read_text()
