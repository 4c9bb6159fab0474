"""bench/showdown.py (round 1) end to end at a toy size: search, R training, evaluate.py, table, plot, weights, configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # end to end through the scripts: `pytest -m "not slow"` skips them
TOY_SEARCH = [
    "search.settings.population_size=4",
    "search.generations=1",
    "trainer.max_steps=3",
    "data.samples_per_epoch=12",
    "data.batch_size=4",
    "data.patch_size=32",
]
TOY_R = ["trainer.max_steps=4", "data.samples_per_epoch=16", "data.batch_size=4", "data.patch_size=32"]


def test_showdown_toy_end_to_end(data_dir, tmp_path):
    args = [
        sys.executable,
        "bench/showdown.py",
        "--results",
        str(tmp_path / "res"),
        "--sweep",
        str(tmp_path / "sweep"),
        "--store",
        str(tmp_path / "runs.jsonl"),
        "--zoo",
        str(tmp_path / "zoo"),
        "--conf",
        str(tmp_path / "conf"),
        "--k",
        "1",
        "--seeds",
        "0",
        "--benchmarks",
        "Set5",
        "--search",
        *TOY_SEARCH,
        "--recipe",
        *TOY_R,
    ]
    env = {
        **os.environ,
        "FALSR_DATA_DIR": str(data_dir),
        "FALSR_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_SILENT": "true",
    }
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "res" / "showdown.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for name in ("FALSR-A(R)", "FALSR-B(R)", "FALSR-C(R)", "searched_b", "bicubic"):
        assert name in rows, table
    assert "235.0G | 1,021,401" in rows["FALSR-A(R)"] and "74.5G | 324,745" in rows["FALSR-B(R)"]
    assert "98.0G | 426,569" in rows["FALSR-C(R)"]
    assert (tmp_path / "res" / "showdown.png").stat().st_size > 1000
    assert json.loads((tmp_path / "res" / "search" / "search_done.json").read_text())["candidates"] >= 4
    # Committed artefacts: the winner's config and seed-0 weights that evaluate.py reproduces the row from.
    assert (tmp_path / "conf" / "searched_b.yaml").is_file()
    weights = torch.load(tmp_path / "zoo" / "falsr_b_r.pt", weights_only=False)
    assert set(weights) >= {"genome", "state_dict"}
    evals = [json.loads(line) for line in (tmp_path / "res" / "evals.jsonl").read_text().splitlines()]
    b_row = next(e for e in evals if e["label"].endswith("FALSR-B(R)"))
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "model=falsr_b",
            f"model.weights={tmp_path / 'zoo' / 'falsr_b_r.pt'}",
            "data.benchmarks=[Set5]",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())["datasets"]["Set5"]
    assert abs(again["psnr"] - b_row["datasets"]["Set5"]["psnr"]) < 1e-9
    # A rerun skips every finished piece: no training, same table.
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "trained" not in proc.stdout.replace("trained)", "")
    assert "finished before" in proc.stdout
