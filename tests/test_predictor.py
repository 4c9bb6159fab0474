"""The performance predictor on a recorded journal (the showdown search's): better than a constant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from falsr.errors import UserError
from falsr.search.journal import Journal, JournalRecord
from falsr.search.predictor import PerformancePredictor, features, predictor_vs_constant, trained

REPO = Path(__file__).resolve().parents[1]
JOURNAL = REPO / "bench" / "results" / "showdown" / "search" / "journal.jsonl"


def records() -> list[JournalRecord]:
    return Journal(JOURNAL).records()


def test_predictor_beats_constant_on_recorded_journal():
    r = predictor_vs_constant(trained(records()))
    assert r["n"] >= 30
    assert r["mae"] < 0.9 * r["mae_constant"]  # held-out error clearly below predicting the mean
    assert r["tau"] > 0.3  # and it ranks held-out candidates


def test_predictor_fits_and_predicts_every_genome():
    pairs = trained(records())
    model = PerformancePredictor().fit(pairs)
    pred = model.predict([g for g, _ in pairs])
    assert pred.shape == (len(pairs),)
    assert features(pairs[0][0]).shape == features(pairs[1][0]).shape


def test_unknown_predictor_is_one_line_error():
    with pytest.raises(UserError, match="unknown predictor"):
        PerformancePredictor("magic")
    proc = subprocess.run(
        [sys.executable, "-m", "falsr.search.predictor", str(JOURNAL), "--kind", "magic"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "unknown predictor" in proc.stderr
