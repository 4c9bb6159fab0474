"""The arithmetic of bench/proxy_fidelity.py: rank agreement with intervals, curve-based estimators, promotion.

Kept apart from the bench's training so that tests/test_fidelity_stats.py checks it against known answers.

* Kendall tau (scipy.stats.kendalltau, tau-b) between an estimator's scores and the reference, averaged over
  the estimator's seeds (a search sees one seed), with a percentile bootstrap 95% interval over the genomes
  (scipy.stats.bootstrap resampling genome indices: the panel is the sample).
* (The curve estimators, SoTL, SoTL-E, a power-law extrapolation of the validation points and the PSNR at a step,
  live with the curves in falsr.training.curves: the search ranks by one of them.)
* Successive halving simulated on recorded curves: which genome each band's promotion would pick, at what
  cost, against the single-fidelity pick at the same cost.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

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


def mean_tau_ci(
    per_seed: Sequence[Scores],
    ref: Scores | Sequence[Scores],
    labels: Sequence[str],
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean_tau, resampling the genomes with replacement.

    `ref`: one reference for every seed, or one per seed (a seed judged without its own reference run); the
    genomes are resampled alike for all seeds. A resample with fewer than 3 distinct genomes, or constant
    scores, has no tau: it is drawn again rather than counted (scipy's bootstrap would turn the whole interval
    into nan)."""
    refs = list(ref) if isinstance(ref, (list, tuple)) else [ref] * len(per_seed)
    common = [k for k in labels if all(k in r for r in refs) and all(k in p for p in per_seed)]
    if not per_seed or len(common) < 4:
        return float("nan"), float("nan")
    est = np.array([[p[k] for k in common] for p in per_seed])  # seeds x genomes
    targets = np.array([[r[k] for k in common] for r in refs])

    def statistic(idx: np.ndarray) -> float:
        idx = idx.astype(int)
        values = [kendalltau(row[idx], target[idx]).statistic for row, target in zip(est, targets)]
        return float(np.mean(values)) if all(np.isfinite(values)) else float("nan")

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # degenerate resamples are handled below
        warnings.simplefilter("ignore")
        res = bootstrap(
            (np.arange(len(common), dtype=float),),
            statistic,
            n_resamples=resamples,
            vectorized=False,
            method="percentile",
            random_state=rng,
        )
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


def seed_agreement_ci(
    per_seed: Sequence[Scores], labels: Sequence[str], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
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


# -- multi-fidelity promotion, simulated on recorded curves ------------------------------------------------


def successive_halving(
    labels: Sequence[str], score_at: Callable[[str, int], float | None], rungs: Sequence[int], eta: int = 2
) -> tuple[str | None, list[list[str]]]:
    """Successive halving on one cost band: every genome runs to rungs[0]; the best ceil(n/eta) by their score
    at that rung continue to the next; the pick is the best at the last rung reached.

    Returns (pick, the genomes trained at each rung). Genomes with no score at a rung are dropped there."""
    alive = [k for k in labels if score_at(k, rungs[0]) is not None]
    trained = [list(alive)]
    for i, rung in enumerate(rungs):
        ranked = sorted(alive, key=lambda k: score_at(k, rung), reverse=True)
        if i == len(rungs) - 1 or len(ranked) <= 1:
            return (ranked[0] if ranked else None), trained
        alive = [k for k in ranked[: max(1, math.ceil(len(ranked) / eta))] if score_at(k, rungs[i + 1]) is not None]
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
