"""The arithmetic of bench/proxy_fidelity.py: rank agreement with intervals, curve-based estimators, promotion.

Kept apart from the bench's training so that tests/test_fidelity_stats.py checks it against known answers.

* Kendall tau (scipy.stats.kendalltau, tau-b) between an estimator's scores and the reference, averaged over
  the estimator's seeds (a search sees one seed), with a percentile bootstrap 95% interval over the genomes
  (scipy.stats.bootstrap resampling genome indices: the panel is the sample).
* Curve estimators read a run's learning curve (falsr.training.curves): the sum of training losses (SoTL,
  Ru et al. 2021) over the whole run and over its last part (SoTL-E), a power-law extrapolation of the
  validation points, and the validation PSNR at a given step of a longer run.
* Successive halving simulated on recorded curves: which genome each band's promotion would pick, at what
  cost, against the single-fidelity pick at the same cost.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.stats import bootstrap, kendalltau

Scores = Mapping[str, float]  # genome label -> score (higher is better)


def tau(a: Scores, b: Scores, labels: Sequence[str]) -> tuple[float, int]:
    """Kendall tau-b of a and b over the labels both have; nan below 3 common labels."""
    common = [k for k in labels if k in a and k in b]
    if len(common) < 3:
        return float("nan"), len(common)
    return float(kendalltau([a[k] for k in common], [b[k] for k in common]).statistic), len(common)


def mean_tau(per_seed: Sequence[Scores], ref: Scores, labels: Sequence[str]) -> tuple[float, int]:
    """The mean over seeds of tau(seed's scores, ref) over the labels every seed and the reference have."""
    common = [k for k in labels if k in ref and all(k in p for p in per_seed)]
    if not per_seed or len(common) < 3:
        return float("nan"), len(common)
    return float(np.mean([tau(p, ref, common)[0] for p in per_seed])), len(common)


def mean_tau_ci(per_seed: Sequence[Scores], ref: Scores, labels: Sequence[str], resamples: int = 2000,
                seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean_tau, resampling the genomes with replacement.

    A resample with fewer than 3 distinct genomes, or constant scores, has no tau: it is drawn again rather
    than counted (scipy's bootstrap would turn the whole interval into nan)."""
    common = [k for k in labels if k in ref and all(k in p for p in per_seed)]
    if not per_seed or len(common) < 4:
        return float("nan"), float("nan")
    est = np.array([[p[k] for k in common] for p in per_seed])  # seeds x genomes
    target = np.array([ref[k] for k in common])

    def statistic(idx: np.ndarray) -> float:
        idx = idx.astype(int)
        values = [kendalltau(row[idx], target[idx]).statistic for row in est]
        return float(np.mean(values)) if all(np.isfinite(values)) else float("nan")

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # degenerate resamples are handled below
        warnings.simplefilter("ignore")
        res = bootstrap((np.arange(len(common), dtype=float),), statistic, n_resamples=resamples, vectorized=False,
                        method="percentile", random_state=rng)
    lo, hi = res.confidence_interval
    if math.isfinite(lo) and math.isfinite(hi):
        return float(lo), float(hi)
    # Degenerate resamples present: the same percentile interval over the finite ones.
    draws = [statistic(rng.integers(0, len(common), len(common)).astype(float)) for _ in range(resamples)]
    draws = [d for d in draws if math.isfinite(d)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def seed_agreement(per_seed: Sequence[Scores], labels: Sequence[str]) -> list[tuple[float, int]]:
    """tau of every pair of seeds (repeatability)."""
    return [tau(per_seed[i], per_seed[j], labels) for i in range(len(per_seed)) for j in range(i + 1, len(per_seed))]


def seed_agreement_ci(per_seed: Sequence[Scores], labels: Sequence[str], resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean pairwise seed-against-seed tau, bootstrap 95% interval over the genomes)."""
    common = [k for k in labels if all(k in p for p in per_seed)]
    pairs = [(i, j) for i in range(len(per_seed)) for j in range(i + 1, len(per_seed))]
    if not pairs or len(common) < 4:
        return float("nan"), float("nan"), float("nan")
    mat = np.array([[p[k] for k in common] for p in per_seed])
    point = float(np.mean([kendalltau(mat[i], mat[j]).statistic for i, j in pairs]))
    rng = np.random.default_rng(seed)
    draws = []
    while len(draws) < resamples:
        idx = rng.integers(0, len(common), len(common))
        values = [kendalltau(mat[i][idx], mat[j][idx]).statistic for i, j in pairs]
        if all(np.isfinite(values)):
            draws.append(float(np.mean(values)))
    return point, float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


# -- curve estimators (a score per run: higher is better) ---------------------------------------------------

def sotl(curve: dict, last_fraction: float = 1.0) -> float | None:
    """Minus the sum of the training-loss windows over the last `last_fraction` of the run (1.0: SoTL, the whole
    run; 1/3: SoTL-E, its last third). Lower training loss ranks higher."""
    steps, values = (curve or {}).get("loss", {}).get("steps"), (curve or {}).get("loss", {}).get("values")
    if not steps:
        return None
    start = steps[-1] * (1.0 - last_fraction)
    kept = [v for s, v in zip(steps, values) if s > start]
    return -float(np.sum(kept)) if kept else None


def val_at(curve: dict, step: int) -> float | None:
    """The curve's validation PSNR at exactly `step` (None when the run did not record it)."""
    val = (curve or {}).get("val") or {}
    for s, v in zip(val.get("steps", []), val.get("psnr", [])):
        if s == step:
            return float(v)
    return None


def power_law(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """PSNR(t) = a - b * t^-c: a saturating learning curve (Domhan et al. 2015 use such families)."""
    return a - b * np.power(t, -c)


def extrapolate(curve: dict, to_step: int, min_points: int = 4) -> float | None:
    """The validation PSNR at `to_step` predicted by a least-squares power law through the curve's points
    (scipy.optimize.curve_fit); the last point itself when the fit fails or runs away (beyond +3 dB)."""
    from scipy.optimize import curve_fit

    val = (curve or {}).get("val") or {}
    t, y = np.asarray(val.get("steps", []), float), np.asarray(val.get("psnr", []), float)
    if len(t) < min_points:
        return None
    try:
        params, _ = curve_fit(power_law, t, y, p0=(y[-1] + 1.0, 10.0, 0.5), bounds=([0, 0, 0.01], [80, 1e4, 3]),
                              maxfev=5000)
        pred = float(power_law(np.asarray([to_step], float), *params)[0])
    except (RuntimeError, ValueError):
        return float(y[-1])
    return pred if math.isfinite(pred) and pred <= y[-1] + 3.0 else float(y[-1])


# -- multi-fidelity promotion, simulated on recorded curves ------------------------------------------------

def successive_halving(labels: Sequence[str], score_at: Callable[[str, int], float | None], rungs: Sequence[int],
                       eta: int = 2) -> tuple[str | None, list[list[str]]]:
    """Successive halving on one cost band: every genome runs to rungs[0]; the best ceil(n/eta) by their score
    at that rung continue to the next; the pick is the best at the last rung reached.

    Returns (pick, the genomes trained at each rung). Genomes with no score at a rung are dropped there."""
    alive = [k for k in labels if score_at(k, rungs[0]) is not None]
    trained = [list(alive)]
    for i, rung in enumerate(rungs):
        ranked = sorted(alive, key=lambda k: score_at(k, rung), reverse=True)
        if i == len(rungs) - 1 or len(ranked) <= 1:
            return (ranked[0] if ranked else None), trained
        alive = [k for k in ranked[:max(1, math.ceil(len(ranked) / eta))] if score_at(k, rungs[i + 1]) is not None]
        trained.append(list(alive))
    return None, trained


def halving_cost(trained: Sequence[Sequence[str]], rungs: Sequence[int], cost_per_step: Mapping[str, float]) -> float:
    """What successive halving costs when a promoted genome continues from its checkpoint: each rung pays only
    the steps beyond the previous rung."""
    total, before = 0.0, 0
    for rung, who in zip(rungs, trained):
        total += sum(cost_per_step[k] * (rung - before) for k in who)
        before = rung
    return total
