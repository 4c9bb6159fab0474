"""scripts/migrate_bench_runs.py: stored bench runs written with `trainer=<budget>` are found again under `budget=`.

The records below are real lines of bench/results/runs.jsonl as they were before the rename (keys computed
from `trainer=cpu`): a plain proxy run and an inheritance pair, whose child names its parent's run folder.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "scripts")]

FALSR_A = "44.24.44.44.44.41.44-0001011_000001_11011_0001_001_11_1"
E80 = ["trainer=cpu", "trainer.max_steps=80", "data.samples_per_epoch=640", "data.batch_size=8", "data.patch_size=32",
       "optimizer.lr=0.002", "scheduler.warmup_steps=8", "scheduler.final_factor=0.05", "model.init_std=null",
       "trainer.precision=32-true", "data.val_sets=[holdout]"]
OLD = [  # (old key, label, overrides)
    ("b91a8f0cbcdb", "p100_init002/s0/FALSR-A",
     ["model=genome", f"model.genome={FALSR_A}", "seed=0", "trainer=cpu", "trainer.max_steps=100",
      "data.samples_per_epoch=1600", "data.batch_size=16", "data.patch_size=64", "optimizer.lr=0.002",
      "scheduler.warmup_steps=10", "scheduler.final_factor=0.05", "data.val_sets=[holdout,Set5,Set14]"]),
    ("32c9986231d3", "e80_inherit-parent/s0/FALSR-A",
     ["model=genome", "model.genome=44.24.44.114.44.41.44-0001011_000001_11011_0001_001_11_1", "seed=0", *E80,
      "save_weights=true"]),
    ("78c4aba93f4d", "e80_inherit/s0/FALSR-A",
     ["model=genome", f"model.genome={FALSR_A}", "seed=0", *E80,
      "model.inherit_from=['outputs/bench-runs/32c9986231d3/weights.pt']"]),
]


def old_record(key, label, overrides, psnr=30.0):
    return {"key": key, "label": label, "overrides": overrides, "run_dir": f"outputs/bench-runs/{key}",
            "status": "ok", "psnr": psnr}


def migrate(tmp_path, store, runs, evals):
    migrate_bench_runs = importlib.import_module("migrate_bench_runs")
    return migrate_bench_runs.main(["--store", str(store), "--runs-dir", str(runs), "--evals", str(evals),
                                    "--efficiency", str(tmp_path / "none.jsonl")])


def test_migrated_runs_are_the_ones_the_benches_ask_for(tmp_path, capsys):
    proxy_fidelity = importlib.import_module("proxy_fidelity")
    from _runs import load_store, run_key

    store, runs, evals = tmp_path / "runs.jsonl", tmp_path / "bench-runs", tmp_path / "evals.jsonl"
    store.write_text("".join(json.dumps(old_record(*r)) + "\n" for r in OLD))
    evals.write_text(json.dumps({"key": "b91a8f0cbcdb", "label": "x", "datasets": {}}) + "\n")
    for key, label, _ in OLD:
        (runs / key).mkdir(parents=True)
        (runs / key / "label.txt").write_text(label)

    assert migrate(tmp_path, store, runs, evals) == 0
    assert "rewrote 3 of 3 records (3 run keys change)" in capsys.readouterr().out
    wanted = {  # what the bench looks up today
        "p100_init002/s0/FALSR-A": run_key(proxy_fidelity.run_overrides("FALSR-A", FALSR_A, "p100_init002", 0)),
        "e80_inherit-parent/s0/FALSR-A": run_key(proxy_fidelity.parent_overrides("FALSR-A", FALSR_A, "e80_inherit", 0)),
        "e80_inherit/s0/FALSR-A": run_key(proxy_fidelity.run_overrides("FALSR-A", FALSR_A, "e80_inherit", 0)),
    }
    done = load_store(store)
    assert {r["label"]: k for k, r in done.items()} == wanted
    for key, rec in done.items():
        assert rec["key"] == run_key(rec["overrides"]) and rec["run_dir"] == f"outputs/bench-runs/{key}"
        assert not any(o.startswith("trainer=") for o in rec["overrides"]) and "budget=cpu" in rec["overrides"]
        assert (runs / key / "label.txt").read_text() == rec["label"]  # the folder moved with its run
    parent = wanted["e80_inherit-parent/s0/FALSR-A"]
    child = done[wanted["e80_inherit/s0/FALSR-A"]]
    assert f"model.inherit_from=['outputs/bench-runs/{parent}/weights.pt']" in child["overrides"]
    assert not any((runs / key).exists() for key, _, _ in OLD)
    assert json.loads(evals.read_text())["key"] == wanted["p100_init002/s0/FALSR-A"]

    # Idempotent, and a store that gained old-name lines (a merge) is migrated onto the same keys: here the
    # child alone, whose parent was migrated by the first run.
    before = store.read_text()
    assert migrate(tmp_path, store, runs, evals) == 0 and store.read_text() == before
    with open(store, "a") as f:
        f.write(json.dumps(old_record(*OLD[2], psnr=31.0)) + "\n")
    assert migrate(tmp_path, store, runs, evals) == 0
    assert "rewrote 1 of 4 records (1 run keys change)" in capsys.readouterr().out
    last = json.loads(store.read_text().splitlines()[-1])
    assert last["key"] == wanted["e80_inherit/s0/FALSR-A"] and last["psnr"] == 31.0
    assert load_store(store)[last["key"]]["psnr"] == 31.0  # the newer line wins, as in the benches


def test_an_existing_new_folder_is_never_overwritten(tmp_path, capsys):
    from _runs import run_key

    store, runs, evals = tmp_path / "runs.jsonl", tmp_path / "bench-runs", tmp_path / "evals.jsonl"
    key, label, overrides = OLD[0]
    store.write_text(json.dumps(old_record(key, label, overrides)) + "\n")
    evals.write_text("")
    new = run_key([o.replace("trainer=cpu", "budget=cpu") for o in overrides])
    for k in (key, new):
        (runs / k).mkdir(parents=True)
        (runs / k / "who").write_text(k)
    assert migrate(tmp_path, store, runs, evals) == 0
    out = capsys.readouterr().out
    assert f"{new} exists too: left as it is" in out
    assert (runs / key / "who").read_text() == key and (runs / new / "who").read_text() == new


def test_the_efficiency_store_gets_the_config_id_the_bench_computes_now(tmp_path, capsys):
    """bench/search_efficiency.py --cpu-budget keys its runs by a hash that includes the objective's sentence
    (which names the budget); the committed runs had id 014d4e4c0a before the rename."""
    import argparse

    import _timed_efficiency
    search_efficiency = importlib.import_module("search_efficiency")
    migrate_bench_runs = importlib.import_module("migrate_bench_runs")

    lines = (REPO / "bench" / "results" / "search_efficiency_real.jsonl").read_text().splitlines()
    records = [{**json.loads(line), "config": "014d4e4c0a"} for line in lines if line.strip()]
    store = tmp_path / "efficiency.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "runs.jsonl").write_text("")
    assert migrate_bench_runs.main(["--store", str(tmp_path / "runs.jsonl"), "--runs-dir", str(tmp_path / "none"),
                                    "--evals", "--efficiency", str(store)]) == 0
    assert f"rewrote {len(records)} of {len(records)} records" in capsys.readouterr().out

    # the README's command: --cpu-budget 240 --population 8 --methods random,nsga2,hybrid,inherit,predictor,...
    methods = "random,nsga2,hybrid,inherit,predictor,inherit_predictor".split(",")
    common = ["space.n_cells=7", "search.settings.population_size=8", "search.settings.crowding=improved"]
    args = argparse.Namespace(cpu_budget=240.0, population=8, cells=7)
    now = _timed_efficiency.config_id(args, {m: search_efficiency.compose_method(m, common) for m in methods})
    assert {json.loads(line)["config"] for line in store.read_text().splitlines()} == {now}
