"""Learning curves (falsr.training.curves): recorded in metrics.json, compact, and never change training."""

from __future__ import annotations

import json

import pytest

from falsr.errors import UserError
from falsr.training.curves import LearningCurve
from falsr.training.train import train
from test_train import tiny


def test_curve_is_recorded_and_observing_changes_nothing(data_dir, tmp_path):
    """Loss windows and held-out PSNR at the asked steps and the end; the same seed without curve points trains
    the same weights (bit-equal final PSNR), so observing is free of side effects on the run."""
    watched = train(
        tiny(
            data_dir,
            tmp_path / "w",
            "callbacks.learning_curve.val_steps=[10,25]",
            "callbacks.learning_curve.loss_every=5",
            "data.val_sets=[holdout]",
            "data.holdout=2",
        )
    )
    plain = train(
        tiny(
            data_dir,
            tmp_path / "p",
            "callbacks.learning_curve.val_steps=[]",
            "callbacks.learning_curve.loss_every=5",
            "data.val_sets=[holdout]",
            "data.holdout=2",
        )
    )
    curve = watched["curve"]
    assert curve["loss"]["steps"] == list(range(5, 41, 5)) and len(curve["loss"]["values"]) == 8
    assert all(v > 0 for v in curve["loss"]["values"])
    assert curve["loss"]["values"][-1] < curve["loss"]["values"][0]  # it learns
    assert curve["val"]["set"] == "holdout" and curve["val"]["steps"] == [10, 25, 40]
    assert curve["val"]["psnr"][-1] > curve["val"]["psnr"][0]
    assert plain["curve"]["val"]["steps"] == [40]  # the end is always a point
    assert watched["psnr"] == plain["psnr"]
    assert curve["loss"]["values"] == plain["curve"]["loss"]["values"]
    on_disk = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert on_disk["curve"] == curve


def test_curve_on_the_validated_set_when_holdout_is_not(data_dir, tmp_path):
    out = train(tiny(data_dir, tmp_path / "s", "callbacks.learning_curve.val_steps=[20]", "data.val_sets=[Set5]"))
    assert out["curve"]["val"]["set"] == "Set5" and out["curve"]["val"]["steps"] == [20, 40]


def test_no_curve_callback_no_curve(data_dir, tmp_path):
    out = train(tiny(data_dir, tmp_path / "n", "callbacks.learning_curve=null", "trainer.max_steps=5"))
    assert out["curve"] is None


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"loss_every": 0}, "loss_every"),
        ({"val_steps": [300, 100]}, "val_steps"),
        ({"val_precision": "fp8"}, "val_precision"),
    ],
)
def test_bad_curve_settings_are_one_line(kwargs, word):
    with pytest.raises(UserError, match=word):
        LearningCurve(**kwargs)
