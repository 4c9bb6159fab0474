"""One precision vocabulary, fp32 / bf16 / auto, for every option that picks a precision; a one-line error naming
the choices for anything else (falsr.protocol.pipeline.PRECISIONS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from falsr.errors import UserError
from falsr.protocol.pipeline import PRECISIONS, fast_bf16, pick_precision, with_precision
from falsr.space.network import build_network
from falsr.training.curves import LearningCurve
from falsr.training.module import SRModule
from falsr.training.train import LIGHTNING_PRECISIONS, resolve_precision

CONF = Path(__file__).resolve().parents[1] / "conf"
AUTO = "bf16" if fast_bf16() else "fp32"


def settings():
    """option name -> what the option makes of a value (fp32 or bf16; trainer.precision: Lightning's value)."""
    return {
        "precision": lambda v: {torch.float32: "fp32", torch.bfloat16: "bf16"}[
            next(with_precision(build_network("1-1"), v).parameters()).dtype
        ],  # evaluate.py, upscale.py
        "module.val_precision": lambda v: SRModule(build_network("1-1"), optimizer=None, val_precision=v).val_precision,
        "callbacks.learning_curve.val_precision": lambda v: LearningCurve(val_precision=v).val_precision,
        "trainer.precision": resolve_precision,
    }


@pytest.mark.parametrize("option", sorted(settings()))
def test_every_option_takes_the_same_words(option):
    made = {word: settings()[option](word) for word in PRECISIONS}
    if option == "trainer.precision":  # Lightning's values for the Trainer
        assert made == {"fp32": "32-true", "bf16": "bf16-mixed", "auto": "bf16-mixed" if AUTO == "bf16" else "32-true"}
    else:
        assert made == {"fp32": "fp32", "bf16": "bf16", "auto": AUTO}


@pytest.mark.parametrize("option", sorted(settings()))
@pytest.mark.parametrize("value", ["fp8", "half", "32", "fp16"])
def test_an_unknown_value_is_a_one_line_error_naming_the_choices(option, value):
    if option == "trainer.precision" and value == "32":
        assert resolve_precision(value) == "32"  # Lightning's own value, passed on as it is
        return
    with pytest.raises(UserError) as err:
        settings()[option](value)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"unknown {option} {value!r}")
    assert "choose one of fp32, bf16, auto" in message
    if value == "32":
        assert "(fp32 now)" in message  # the former spelling of module.val_precision


def test_the_lightning_values_stay_the_trainers():
    assert all(resolve_precision(v) == v for v in LIGHTNING_PRECISIONS)
    assert pick_precision("auto") == AUTO


def test_every_precision_in_the_configs_is_in_the_vocabulary():
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif path.rpartition(".")[2].endswith("precision"):
            found.append((path, str(node)))

    for file in sorted(CONF.rglob("*.yaml")):
        walk(yaml.safe_load(file.read_text()) or {}, file.relative_to(CONF).with_suffix("").as_posix())
    assert len(found) >= 5, found  # train, budget/search, trainer/default, evaluate, upscale
    assert [(path, value) for path, value in found if value not in PRECISIONS] == []
