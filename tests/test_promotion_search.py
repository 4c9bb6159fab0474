"""bench/promotion_search.py: a promoted real search against a single-fidelity one in a band, at a toy size, and the
step accounting it compares them by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import promotion_search  # noqa: E402

TOY = [
    "search.settings.population_size=4",
    "search.seed=1",
    "data.samples_per_epoch=16",
    "data.batch_size=4",
    "data.patch_size=32",
    "scheduler.warmup_steps=1",
]


def test_training_steps_of_promoted_and_single_records():
    """Known answers: a continued record trains from the rung below; a restarted one (no resumed_from) from zero."""
    rungs = [100, 300, 700]
    assert promotion_search.trained_steps({"rung": 0}, rungs, 700) == 100
    assert promotion_search.trained_steps({"rung": 1, "resumed_from": "a.ckpt"}, rungs, 700) == 200
    assert promotion_search.trained_steps({"rung": 2, "resumed_from": "b.ckpt"}, rungs, 700) == 400
    assert promotion_search.trained_steps({"rung": 2}, rungs, 700) == 700
    assert promotion_search.trained_steps({}, [], 300) == 300


def _side(key: str, per_seed: dict, precision: str, steps: int = 4800) -> dict:
    mean = sum(per_seed.values()) / len(per_seed)
    return {
        "steps": steps,
        "pick": {"key": key},
        "judged": {"per_seed": per_seed, "mean": mean, "precision": [precision]},
    }


def test_the_verdict_per_seed_and_across_precisions():
    """Known answers: the mean and per-seed differences; picks judged in different precisions (auto means bf16 on
    one machine, fp32 on another) are not compared."""
    res = {
        "single": _side("a", {"0": 32.0, "1": 32.1}, "32-true"),
        "promoted": _side("b", {"0": 32.1, "1": 31.8}, "32-true"),
    }
    assert promotion_search.verdict(res) == (
        "Promotion picks a worse model (-0.100 dB on the reference mean; per seed +0.100 / -0.300) at 1.00x the "
        "single-fidelity search's training steps: the goal (at least as good at equal cost) is not met in this band, "
        "on one search."
    )
    res["promoted"] = _side("b", {"0": 32.1, "1": 32.1}, "bf16-mixed")
    assert promotion_search.verdict(res) == (
        "Not comparable: the picks' reference runs were trained in different precisions (['32-true'] / ['bf16-mixed'])."
    )
    res["promoted"] = _side("a", {"0": 32.0, "1": 32.1}, "32-true", steps=2400)
    assert promotion_search.verdict(res).startswith("Promotion picks the same model at 0.50x")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stage", "single"], "--stage single runs the search of --single-search"),
        (["--single", "x", "--single-search", "budget=search"], "--single reads a stored search"),
    ],
)
def test_contradictory_options_are_one_line_errors(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        promotion_search.main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def _env(data_dir):
    return dict(os.environ, FALSR_DATA_DIR=str(data_dir), WANDB_MODE="disabled", OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_a_toy_promoted_search_is_judged_against_the_single_fidelity_one(data_dir, tmp_path):
    """The bench runs both searches itself (--single-search), in two processes (--stage), then judges their picks."""
    args = [sys.executable, "bench/promotion_search.py", "--band", "b"]
    args += ["--single-search", "trainer.max_steps=4", *TOY]  # its steps per candidate composed from these: 4
    args += ["--rungs", "2,4", "--eta", "2", "--reference", "q10", "--seeds", "0"]
    args += ["--results", str(tmp_path / "res"), "--store", str(tmp_path / "runs.jsonl")]
    args += ["--sweep", str(tmp_path / "promoted"), "--search", *TOY]
    stages = [
        subprocess.Popen([*args, "--stage", stage], cwd=REPO, env=_env(data_dir), stdout=subprocess.PIPE, text=True)
        for stage in ("single", "promoted")
    ]
    for proc in stages:
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-2000:]
    assert not (tmp_path / "res" / "b.json").exists()  # a stage runs its search only
    single = tmp_path / "res" / "search_b_single"
    first = subprocess.run(args, cwd=REPO, env=_env(data_dir), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    result = json.loads((tmp_path / "res" / "b.json").read_text())
    single_records = [json.loads(x) for x in (single / "journal.jsonl").read_text().splitlines() if x.strip()]
    ok = [r for r in single_records if r["status"] == "ok"]
    assert result["single"]["steps"] == 4 * len(ok) and result["single"]["records"] == len(single_records) == 8
    promoted = result["promoted"]
    # 8 candidates at rung 0; each generation promotes half of what rung 0 holds, continued from 2 to 4 steps
    assert promoted["per_rung"][0] == 8 and 2 <= promoted["per_rung"][1] <= 4
    assert promoted["steps"] == 2 * promoted["per_rung"][0] + 2 * promoted["per_rung"][1]
    assert promoted["pick"]["rung"] == 1  # the highest rung reached wins, whatever the score at rung 0
    lo, hi = result["bounds"]
    for side in ("single", "promoted"):
        pick = result[side]["pick"]
        assert lo <= pick["mult_adds"] <= hi
        assert result[side]["judged"]["mean"] is not None  # the reference (q10, seed 0) trained for it
    report = (tmp_path / "res" / "promotion_search.md").read_text()
    assert "## Band B" in report and "the goal (at least as good at equal cost) is" in report
    # --report recomputes everything from the stores and trains nothing
    runs_before = (tmp_path / "runs.jsonl").read_text()
    again = subprocess.run([*args, "--report"], cwd=REPO, env=_env(data_dir), capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert json.loads((tmp_path / "res" / "b.json").read_text()) == result
    assert (tmp_path / "runs.jsonl").read_text() == runs_before
    # --baseline: another stored search's pick judged alike, a third row (here the same search: the same pick)
    based = subprocess.run([*args, "--report", "--baseline", str(single)], cwd=REPO, env=_env(data_dir), text=True)
    assert based.returncode == 0
    result = json.loads((tmp_path / "res" / "b.json").read_text())
    assert result["baseline"]["pick"] == result["single"]["pick"]
    assert result["baseline"]["judged"] == result["single"]["judged"]
    assert (
        "| single fidelity, stored search: 300 steps, search_b_single |"
        in (tmp_path / "res" / "promotion_search.md").read_text()
    )
    assert "the same pick." in (tmp_path / "res" / "promotion_search.md").read_text()
    assert (tmp_path / "runs.jsonl").read_text() == runs_before
