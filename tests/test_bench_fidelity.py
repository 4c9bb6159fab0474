"""bench/proxy_fidelity.py --quick: the reduced run trains its panel and writes every estimator's tau and interval."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # end to end through the scripts: `pytest -m "not slow"` skips them


def _bench(script: str, data_dir, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """A bench script run as a user would, on the test data; it must succeed."""
    env = {**os.environ, "FALSR_DATA_DIR": str(data_dir), "FALSR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_proxy_fidelity_quick(data_dir, tmp_path):
    store = tmp_path / "runs.jsonl"
    proc = _bench("proxy_fidelity.py", data_dir, tmp_path, "--quick", "--store", str(store))
    result = json.loads((tmp_path / "proxy_fidelity.json").read_text())
    ests = result["estimators"]
    for name in (
        "q10",
        "sotl(q10)",
        "sotl_e(q10)",
        "extrapolated(q10)",
        "qref@20",
        "qref@40",
        "synflow",
        "grad_norm",
        "mult-adds",
        "params",
        "predictor(q10)",
        "q10, mean of 2 seeds",
    ):
        e = ests[name]
        assert e["n_panel"] == 5, name  # every quick genome, from the runs just trained
        assert math.isfinite(e["tau_panel"]) and -1 <= e["tau_panel"] <= 1, name
        lo, hi = e["ci_panel"]
        assert lo <= hi, name
    assert result["reference"]["seeds"] == [0, 1] and result["reference"]["steps"] == 100
    assert math.isfinite(result["reference"]["self_tau"])
    # Every run recorded its learning curve: the proxy's points and the reference's early points.
    runs = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(runs) == 20 and all(r["curve"]["val"]["steps"] for r in runs)
    assert "| q10 |" in proc.stdout and "Goal" in proc.stdout
    # Rank agreement against training cost: the reference read at each curve point and at its end, and the proxy,
    # each judged without its own seed's reference run, cheapest first in the report.
    by_cost = {r["name"]: r for r in result["fidelity_by_cost"]}
    assert set(by_cost) == {"qref@20", "qref@40", "qref@60", "qref@80", "qref@100", "q10"}
    for r in by_cost.values():
        assert r["n_panel"] == 5 and r["seeds"] == 2 and -1 <= r["tau_panel"] <= 1, r["name"]
    assert by_cost["qref@20"]["cpu_seconds_per_genome"] < by_cost["qref@100"]["cpu_seconds_per_genome"]
    assert "Rank agreement against training" in proc.stdout


def test_promotion_over_every_pool_regenerates_the_committed_numbers():
    """The committed report's successive-halving tables (one pick per band, and every pool of a band) and its rank
    agreement against training cost come from the stored runs: recomputed here, they are the committed ones; each
    pool's pick is never above the pool's best."""
    sys.path.insert(0, str(REPO / "bench"))
    import proxy_fidelity as pf

    committed = json.loads((REPO / "bench" / "results" / "proxy_fidelity.json").read_text())
    result = pf.evaluate(
        pf.PANEL,
        pf.RECIPES,
        REPO / "bench" / "results" / "runs.jsonl",
        [0, 1, 2],
        "p2000",
        [0, 1, 2],
        completed=pf.COMPLETED,
        alternatives=pf.ALTERNATIVES,
        timed=pf.timed_costs(REPO / "bench" / "results", "p300"),
        search=pf.SEARCH,
        longer=pf.LONGER,
        resamples=20,
    )
    assert result["promotion"] == committed["promotion"]
    assert result["promotion_vs_search"] == committed["promotion_vs_search"]
    for row in result["promotion_vs_search"]:  # the single pick is its own baseline; nothing beats a pool's best
        assert row["rules"][f"single: {pf.SEARCH}"] == {
            "cost_vs_single": 1.0,
            "mean_regret": row["rules"][f"single: {pf.SEARCH}"]["mean_regret"],
            "mean_vs_single": 0.0,
            "better": 0.0,
            "worse": 0.0,
        }
        assert all(r["mean_regret"] >= 0 for r in row["rules"].values())
    point = [
        {k: r[k] for k in ("name", "seeds", "tau_panel", "n_panel", "tau_band", "n_band")}
        for r in result["fidelity_by_cost"]
    ]
    assert point == [
        {k: r[k] for k in ("name", "seeds", "tau_panel", "n_panel", "tau_band", "n_band")}
        for r in committed["fidelity_by_cost"]
    ]
    assert result["promotion_pools"] == committed["promotion_pools"]
    assert {(r["band"], r["pools"]) for r in result["promotion_pools"]} == {
        ("B (40-74.5G)", math.comb(11, pf.POOL_SIZE)),
        ("50-100G", math.comb(16, pf.POOL_SIZE)),
    }
    for row in result["promotion_pools"]:
        for rule in row["rules"].values():
            assert rule["mean_regret"] >= 0 and rule["better"] + rule["worse"] <= 1
        assert row["rules"]["single: extrapolated"]["mean_vs_single"] == 0


def test_recipe_cost_times_two_recipes_alike(data_dir, tmp_path):
    """bench/recipe_cost.py --quick: both recipes on both genomes, in A B / B A order, and the ratio of their stored CPU seconds."""
    out = tmp_path / "cost.json"
    _bench("recipe_cost.py", data_dir, tmp_path, "--quick", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["recipes"] == ["q10", "qref"] and result["n"] == 2
    runs = [json.loads(line) for line in out.with_name("cost_runs.jsonl").read_text().splitlines()]
    assert [r["label"].split("/")[0] for r in runs] == ["q10", "qref", "qref", "q10"]  # alternating
    assert [r["steps"] for r in runs] == [10, 100, 100, 10]  # each recipe trained its own schedule
    # The ratio is the stored CPU seconds' arithmetic (whether 100 steps cost more than 10 depends on the machine).
    cpu = {(r["label"].split("/")[0], r["label"].split("/")[-1]): r["cpu_seconds"] for r in runs}
    labels = sorted(result["genomes"])
    assert result["ratio_of_totals"] == pytest.approx(
        sum(cpu["qref", g] for g in labels) / sum(cpu["q10", g] for g in labels)
    )
    assert result["ratio_per_genome"]["min"] == pytest.approx(min(cpu["qref", g] / cpu["q10", g] for g in labels))
    assert "| init-9.7G |" in out.with_suffix(".md").read_text()
    bad = subprocess.run(
        [sys.executable, "bench/recipe_cost.py", "--recipes", "p300,nope"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "give two of" in bad.stderr
