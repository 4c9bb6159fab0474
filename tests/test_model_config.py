"""Cells and connections as model config: the zoo in data form, one cell overridden, a cell swept by Hydra multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from falsr.cli import CONF_DIR
from falsr.errors import UserError
from falsr.space.genome import Cell, model_genome, parse_genome
from falsr.space.network import build_network

REPO = Path(__file__).resolve().parents[1]
# The zoo's genomes as strings: the released ones read off their graphs, the searched ones the winners that
# bench/showdown2.py wrote (searched_a, searched_b: round 2); test_searched_genomes_are_the_bench_winners
# checks the latter against the committed results.
ZOO_STRINGS = {
    "falsr_a": "44.24.44.44.44.41.44-0001011_000001_11011_0001_001_11_1",
    "falsr_b": "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1",
    "falsr_c": "63.41.179.63.108.29.6-1001101_010010_00001_0000_000_00_1",
    "searched_a": "92.92.92.91.92.92.0-1010010_100000_01011_1100_101_10_1",
    "searched_b": "80.122.101.53.126.30.95-0101100_100111_01100_0110_010_01_1",
}


def model_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("summary", overrides=list(overrides)).model


@pytest.mark.parametrize("name", sorted(ZOO_STRINGS))
def test_zoo_configs_are_cells_and_inputs_of_the_same_genomes(name):
    model = model_config(f"model={name}")
    assert model.genome is None and len(model.cells) == 7 and len(model.inputs) == 8
    net = instantiate(model)
    assert str(net.genome) == ZOO_STRINGS[name]
    assert build_network(ZOO_STRINGS[name]).genome == net.genome  # the string form still builds the same network


def test_one_cell_overridden_from_the_command_line():
    model = model_config("model=falsr_b", "model.cells.3=conv_f32_k3_b2_isskip")
    genome = instantiate(model).genome
    original = parse_genome(ZOO_STRINGS["falsr_b"])
    assert genome.cells[3] == Cell.from_name("conv_f32_k3_b2_isskip").index
    assert genome.cells[:3] + genome.cells[4:] == original.cells[:3] + original.cells[4:]
    assert genome.connections == original.connections
    rewired = instantiate(model_config("model=falsr_b", "model.inputs.3=[0,3]")).genome
    assert rewired.inputs_of(3) == [0, 3] and rewired.cells == original.cells


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"genome": "1-1", "cells": ["conv_f16_k3_b1_isskip"], "inputs": [[0], [1]]}, "both set"),
        ({"cells": ["conv_f16_k3_b1_isskip"]}, "go together"),
        ({"cells": ["conv_f16_k3_b1_isskip"], "inputs": [[0], [0]]}, "model.cells / model.inputs: target 1"),
        ({"cells": ["conv_f99_k3_b1_isskip"], "inputs": [[0], [1]]}, "not in the search space"),
    ],
)
def test_bad_data_form_is_one_line(kwargs, fragment):
    with pytest.raises(UserError, match=fragment) as err:
        model_genome(**kwargs)
    assert "\n" not in str(err.value)


def run_train(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FALSR_CACHE_DIR": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def validate_only(data_dir: Path) -> list[str]:
    """No training (trainer.max_steps=0), one small validation image: the commands, not the quality."""
    return [
        f"paths.data_dir={data_dir}",
        "trainer.max_steps=0",
        "data.val_sets=[Set5]",
        "trainer.limit_val_batches=1",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "model.init_std=null",
    ]


def test_train_py_with_one_cell_overridden(data_dir, tmp_path):
    proc = run_train(
        "model=falsr_b",
        "model.cells.3=conv_f32_k3_b2_isskip",
        *validate_only(data_dir),
        f"hydra.run.dir={tmp_path / 'run'}",
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert parse_genome(metrics["genome"]).cells[3] == Cell.from_name("conv_f32_k3_b2_isskip").index
    assert metrics["status"] == "ok" and metrics["psnr"] is not None


def test_a_cell_swept_by_hydra_multirun_is_two_jobs(data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    choices = ["conv_f16_k3_b1_noskip", "conv_f32_k3_b1_noskip"]
    proc = run_train(
        "-m",
        "model=falsr_b",
        f"model.cells.3={','.join(choices)}",
        *validate_only(data_dir),
        f"hydra.sweep.dir={sweep}",
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    cells = [parse_genome(json.loads((p / "metrics.json").read_text())["genome"]).cells[3] for p in jobs]
    assert cells == [Cell.from_name(c).index for c in choices]


@pytest.mark.parametrize(
    "name, results", [("searched_a", "showdown2/showdown2.json"), ("searched_b", "showdown2/showdown2.json")]
)
def test_searched_genomes_are_the_bench_winners(name, results):
    assert ZOO_STRINGS[name] in (REPO / "bench" / "results" / results).read_text()


def test_written_model_configs_are_the_data_form(tmp_path):
    """bench/showdown.py writes its winners with model_config_text: cells + inputs that build the same genome."""
    import yaml

    from falsr.space.genome import model_config_text

    for name, genome in ZOO_STRINGS.items():
        written = yaml.safe_load(model_config_text(genome, name, ["a note"]))
        committed = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
        assert (written["cells"], written["inputs"]) == (committed["cells"], committed["inputs"])
        assert str(build_network(None, cells=written["cells"], inputs=written["inputs"]).genome) == genome
