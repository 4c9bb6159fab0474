"""The fidelity bench's arithmetic against known answers (bench/_estimators.py, bench/_timed_efficiency.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _estimators as est
import _timed_efficiency
from falsr.search import HypervolumeBox
from falsr.training import curves

LABELS = ["a", "b", "c", "d"]
REF = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}


def test_kendall_tau_on_hand_made_rankings():
    assert est.tau(REF, REF, LABELS) == (1.0, 4)
    assert est.tau({k: -v for k, v in REF.items()}, REF, LABELS) == (-1.0, 4)
    one_swap = {"a": 4.0, "b": 3.0, "c": 1.0, "d": 2.0}  # 5 concordant pairs of 6, 1 discordant: (5 - 1) / 6
    assert est.tau(one_swap, REF, LABELS)[0] == pytest.approx(4 / 6)
    assert np.isnan(est.tau(REF, REF, ["a", "b"])[0])  # too few to rank
    assert est.mean_tau([REF, one_swap], REF, LABELS) == (pytest.approx((1 + 4 / 6) / 2), 4)


def test_bootstrap_interval():
    ref = {str(i): float(i) for i in range(12)}
    lo, hi = est.mean_tau_ci([ref], ref, list(ref), resamples=300)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # a perfect ranking stays perfect in resamples
    rng = np.random.default_rng(0)
    noisy = {k: v + rng.normal(0, 3) for k, v in ref.items()}
    point = est.mean_tau([noisy], ref, list(ref))[0]
    lo, hi = est.mean_tau_ci([noisy], ref, list(ref), resamples=300)
    assert -1 <= lo < point < hi <= 1 and hi - lo > 0.2
    same, slo, shi = est.seed_agreement_ci([ref, ref, noisy], list(ref), resamples=200)
    assert same == pytest.approx((1 + 2 * point) / 3) and slo <= same <= shi
    # One reference per seed (a seed judged without its own reference run): the same as one shared reference when
    # the references agree; a seed that matches its own reference perfectly keeps the interval above the other's.
    assert est.mean_tau_ci([noisy], [ref], list(ref), resamples=300) == (lo, hi)
    reversed_ref = {k: -v for k, v in ref.items()}
    plo, phi = est.mean_tau_ci([ref, reversed_ref], [ref, reversed_ref], list(ref), resamples=300)
    assert plo == pytest.approx(1.0) and phi == pytest.approx(1.0)
    mlo, mhi = est.mean_tau_ci([ref, reversed_ref], ref, list(ref), resamples=300)  # +1 and -1: mean 0 always
    assert mlo == pytest.approx(0.0) and mhi == pytest.approx(0.0)


def test_curve_estimators():
    curve = {
        "loss": {"every": 10, "steps": [10, 20, 30, 40], "values": [4.0, 3.0, 2.0, 1.0]},
        "val": {
            "steps": [50, 100, 150, 200, 250, 300],
            "psnr": [30 - 10 * t**-0.5 for t in (50, 100, 150, 200, 250, 300)],
        },
    }
    assert curves.sotl(curve) == -10.0
    assert curves.sotl(curve, 1 / 3) == -3.0  # windows ending after step 26.7: 30 and 40
    assert curves.val_at(curve, 100) == pytest.approx(29.0) and curves.val_at(curve, 120) is None
    assert curves.extrapolate(curve, 1000) == pytest.approx(30 - 10 * 1000**-0.5, abs=1e-3)
    assert curves.sotl({}) is None and curves.extrapolate({"val": {"steps": [1], "psnr": [2]}}, 10) is None


def test_successive_halving_on_hand_made_curves():
    # Scores at rungs 1, 2, 3: "c" starts slowly but ends best; "d" starts best and stalls.
    curves = {
        "a": {1: 1.0, 2: 2.0, 3: 3.0},
        "b": {1: 0.5, 2: 1.0, 3: 1.5},
        "c": {1: 2.0, 2: 4.0, 3: 9.0},
        "d": {1: 3.0, 2: 3.5, 3: 3.6},
    }

    def at(k, rung):
        return curves[k].get(rung)

    pick, trained = est.successive_halving(list(curves), at, (1, 2, 3), eta=2)
    assert trained == [["a", "b", "c", "d"], ["d", "c"], ["c"]] and pick == "c"
    pick, trained = est.successive_halving(list(curves), at, (1, 3), eta=4)  # only the best at rung 1 goes on
    assert pick == "d" and trained == [["a", "b", "c", "d"], ["d"]]
    cost = est.halving_cost(
        [["a", "b", "c", "d"], ["d", "c"], ["c"]], (1, 2, 3), {"a": 1.0, "b": 1.0, "c": 2.0, "d": 3.0}
    )
    assert cost == pytest.approx((1 + 1 + 2 + 3) * 1 + (3 + 2) * 1 + 2 * 1)  # continued runs pay only new steps


def test_hypervolume_of_the_efficiency_bench_by_hand():
    box = HypervolumeBox()

    def point(u_psnr, u_macs, u_params, clock):
        return {
            "psnr": box.psnr_max - u_psnr * (box.psnr_max - box.psnr_min),
            "mult_adds": box.mult_adds_min * (box.mult_adds_max / box.mult_adds_min) ** u_macs,
            "params": box.params_min * (box.params_max / box.params_min) ** u_params,
            "clock": clock,
            "status": "ok",
        }

    history = [point(0.5, 0.5, 0.5, 1.0), point(0.25, 0.75, 0.75, 2.0), point(0.0, 0.0, 0.0, 9.0)]
    # [0.5, 1]^3 = 0.125, plus [0.25, 1] x [0.75, 1]^2 = 0.046875, less their overlap 0.5 x 0.25^2 = 0.03125.
    assert _timed_efficiency.hv_at(history, box, 2.0) == pytest.approx(0.140625)
    assert _timed_efficiency.hv_at(history, box, 1.0) == pytest.approx(0.125)
    assert _timed_efficiency.hv_at(history, box, 9.0) == pytest.approx(1.0)  # the ideal corner fills the box


def test_promotion_on_the_search_family_is_simulated_at_the_cost_it_states():
    """The rules on LONGER (budget=search's recipe at 2000 steps) read only its recorded points and end, and
    [500, 1000, 2000] eta 2 over a pool of 8 trains exactly the 8 x 1000 steps of the single-fidelity search."""
    import proxy_fidelity as pf

    longer, search = pf.RECIPES[pf.LONGER], pf.RECIPES[pf.SEARCH]
    changed = {o.split("=")[0] for o in set(longer) ^ set(search)}  # the same family: only its length differs
    assert changed == {
        "trainer.max_steps",
        "data.samples_per_epoch",
        "scheduler.warmup_steps",
        "callbacks.learning_curve.val_steps",
    }
    points = set(pf._recipe_curve(longer))
    pool = [f"g{i}" for i in range(8)]
    for rungs, eta in pf.LONGER_PROMOTION_RULES.values():
        assert rungs[-1] == pf._recipe_steps(longer) and set(rungs[:-1]) <= points
        pick, trained = est.successive_halving(pool, lambda k, step: int(k[1:]) + step / 1e4, rungs, eta)
        assert pick == "g7" and trained[0] == pool
    rungs, eta = pf.LONGER_PROMOTION_RULES["rungs [500, 1000, 2000], eta 2"]
    _, trained = est.successive_halving(pool, lambda k, step: int(k[1:]), rungs, eta)
    assert [len(t) for t in trained] == [8, 4, 2]
    assert est.halving_cost(trained, rungs, dict.fromkeys(pool, 1.0)) == 8 * pf._recipe_steps(search)


def test_only_promotion_selects_the_panel_genomes_of_the_simulated_bands():
    """--only promotion: the panel's genomes of 40-100G mult-adds (bands B and 50-100G), none outside."""
    import proxy_fidelity as pf
    from falsr.space.cost import genome_cost
    from falsr.space.genome import parse_genome

    macs = {label: genome_cost(parse_genome(g)).mult_adds for label, g, _ in pf.PANEL}
    chosen = {p[0] for p in pf.PANEL if pf._selected(p, "promotion")}
    assert chosen == {k for k, m in macs.items() if 40e9 <= m <= 100e9}
    assert {"FALSR-B", "FALSR-C"} <= chosen and "FALSR-A" not in chosen and len(chosen) == 17
    assert {p[0] for p in pf.PANEL if pf._selected(p, "first16")} == pf.FIRST16
