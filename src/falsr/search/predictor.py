"""A performance predictor fitted on the search journal: genome features and costs -> proxy PSNR.

The FALSR paper names such a predictor as future work. Here it pre-screens offspring: many are proposed,
only the predicted best (plus an exploration share) are trained. The regressor is scikit-learn's
gradient boosting (a maintained library; small tabular data, no feature scaling needed), and its
quality is measured, never assumed: `cross_validated_tau` is the rank correlation of out-of-fold
predictions with the journal, and `predictor_vs_constant` compares its out-of-fold error with the
constant (mean) predictor's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from falsr.errors import UserError
from falsr.search.journal import STATUS_OK, Journal, JournalRecord
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome, active_space, parse_genome

KINDS = ("gbr",)


def features(genome: Genome | str) -> np.ndarray:
    """Per cell: one-hot op, width, kernel 3, in-cell skip, log2 repeats, inputs; the connection bits; log costs."""
    g = parse_genome(genome)
    space = active_space()
    out: list[float] = []
    for j, cell in enumerate(g.cell_specs):
        out += [float(cell.op == op) for op in space.ops]
        out += [
            cell.channels / max(space.channels),
            cell.kernel / max(space.kernels),
            float(cell.has_skip),
            math.log2(cell.repeats) / max(math.log2(max(space.repeats)), 1.0),
            len(g.inputs_of(j)) / (j + 1),
        ]
    out += [float(b) for b in g.connections]
    cost = genome_cost(g)
    out += [math.log(cost.mult_adds), math.log(cost.params), len(g.inputs_of(g.n_cells)) / (g.n_cells + 1)]
    from falsr.search.objectives import active_objectives

    if "latency" in (objectives := active_objectives()).names:  # the search's objective: its table's log latency
        out.append(math.log(max(objectives.latency_ms(g), 1e-6)))
    return np.asarray(out, dtype=np.float64)


def trained(records: Sequence[JournalRecord]) -> list[tuple[str, float]]:
    """(genome, PSNR) of the successfully trained journal records: what the predictor learns from a journal."""
    return [(r.genome, r.psnr) for r in records if r.status == STATUS_OK and r.psnr is not None]


def training_data(pairs: Sequence[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, y, genomes) of the (genome, PSNR) pairs with a finite PSNR."""
    rows = [(g, p) for g, p in pairs if p is not None and math.isfinite(p)]
    genomes = [g for g, _ in rows]
    if not rows:
        return np.zeros((0, 0)), np.zeros(0), []
    return np.stack([features(g) for g in genomes]), np.asarray([p for _, p in rows], dtype=np.float64), genomes


class PerformancePredictor:
    """Fit on (genome, PSNR) pairs (a journal's: :func:`trained`); `predict` proxy PSNR of genomes; `kind` picks
    the regressor."""

    def __init__(self, kind: str = "gbr", seed: int = 0):
        if kind not in KINDS:
            raise UserError(f"unknown predictor {kind!r}: choose one of {', '.join(KINDS)}")
        self.kind, self.seed = kind, seed
        self.model = None

    def _new(self):
        from sklearn.ensemble import GradientBoostingRegressor

        # Small, shallow trees: a journal holds tens to hundreds of candidates.
        return GradientBoostingRegressor(
            n_estimators=200, max_depth=2, learning_rate=0.05, subsample=0.8, random_state=self.seed
        )

    def fit(self, pairs: Sequence[tuple[str, float]]) -> PerformancePredictor:
        x, y, _ = training_data(pairs)
        if len(y) < 4:
            raise ValueError(f"the predictor needs at least 4 trained candidates, the journal has {len(y)}")
        self.model = self._new().fit(x, y)
        return self

    def predict(self, genomes: Sequence[Genome | str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the predictor first")
        return self.model.predict(np.stack([features(g) for g in genomes]))


def out_of_fold(
    pairs: Sequence[tuple[str, float]], kind: str = "gbr", folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, predictor's out-of-fold predictions, constant predictor's out-of-fold predictions)."""
    x, y, _ = training_data(pairs)
    n = len(y)
    if n < 2 * folds:
        raise ValueError(f"{n} trained candidates are too few for {folds}-fold validation")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    pred, const = np.zeros(n), np.zeros(n)
    for k in range(folds):
        test = order[k::folds]
        held = set(test)
        train = [i for i in order if i not in held]
        model = PerformancePredictor(kind, seed)._new().fit(x[train], y[train])
        pred[test] = model.predict(x[test])
        const[test] = y[train].mean()
    return y, pred, const


def cross_validated_tau(pairs: Sequence[tuple[str, float]], kind: str = "gbr", folds: int = 5, seed: int = 0) -> float:
    """Kendall tau between the journal's PSNR and out-of-fold predictions (the predictor's held-out ranking)."""
    from scipy.stats import kendalltau

    y, pred, _ = out_of_fold(pairs, kind, folds, seed)
    return float(kendalltau(y, pred).statistic)


def predictor_vs_constant(pairs: Sequence[tuple[str, float]], kind: str = "gbr", folds: int = 5, seed: int = 0) -> dict:
    """Out-of-fold mean absolute error of the predictor and of the constant (training mean) predictor."""
    y, pred, const = out_of_fold(pairs, kind, folds, seed)
    return {
        "n": len(y),
        "mae": float(np.abs(pred - y).mean()),
        "mae_constant": float(np.abs(const - y).mean()),
        "tau": cross_validated_tau(pairs, kind, folds, seed),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """python -m falsr.search.predictor <journal.jsonl>: how well the predictor ranks held-out candidates."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("journal", type=Path)
    parser.add_argument("--kind", default="gbr", help=f"one of {', '.join(KINDS)}")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.journal.is_file():
        parser.error(f"no journal at {args.journal}: give a search's journal.jsonl")
    PerformancePredictor(args.kind)  # an unknown kind is a one-line error before any work
    r = predictor_vs_constant(trained(Journal(args.journal).records()), args.kind, args.folds)
    print(
        f"{r['n']} trained candidates, {args.folds}-fold: predictor MAE {r['mae']:.3f} dB vs constant "
        f"{r['mae_constant']:.3f} dB; Kendall tau of held-out predictions {r['tau']:.3f}"
    )
    return 0


if __name__ == "__main__":
    import sys

    from falsr.errors import exit_on_user_error

    with exit_on_user_error():
        sys.exit(main())
