"""Showdown round 2 (bench/showdown2.py): the pinned band searches, the report's arithmetic, and the whole pipeline at a
toy size (band search, successive-halving selection on held-out images, fresh-seed R*, paired test, plot, weights)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from falsr.cli import CONF_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import showdown2  # noqa: E402

RESULTS = REPO / "bench" / "results" / "showdown2"
PINNED = {"b": (40e9, 74.5e9), "a": (100e9, 235e9)}
# search.seed=1: its first generation has 3 of 4 models inside band B (seed 0's has none), so the toy selection has 2.
TOY_SEARCH = [
    "search.settings.population_size=4",
    "search.generations=1",
    "search.seed=1",
    "trainer.max_steps=3",
    "data.samples_per_epoch=12",
    "data.batch_size=4",
    "data.patch_size=32",
]
# The toy R* (qref cut short) and its rung before it (q10): batch 8 of 32px patches.
TOY_R = [
    "trainer.max_steps=12",
    "data.samples_per_epoch=96",
    "data.val_sets=[holdout,Set5]",
    "callbacks.learning_curve.val_steps=[4,8]",
]


def composed_search(experiment: str, args=()):
    """The config search.py composes for `+search=nsga2 experiment=<experiment> <args>`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "search", overrides=["+search=nsga2", f"experiment={experiment}", *args, "paths.output_dir=/tmp/unused"]
        )


def _search_node(cfg) -> dict:
    node = OmegaConf.to_container(cfg, resolve=True)
    node.pop("resume", None)  # set by a resumed search, not part of what ran
    return node


@pytest.mark.parametrize("band", ["b", "a"])
def test_the_pinned_band_search_is_what_runs(band):
    """The composed experiment holds the band and the measured evaluator; where the band's search has run, its stored
    config is exactly what composing the experiment with the recorded overrides gives."""
    cfg = composed_search(f"showdown_{band}")
    s = cfg.search
    assert (s.settings.constraints.min_mult_adds, s.settings.constraints.max_mult_adds) == PINNED[band]
    assert s.estimator == "extrapolated" and s.estimate_at == 1000
    assert s.settings.prescreen_factor == 1 and list(s.fidelity.rungs) == []
    assert (s.settings.population_size, s.generations) == (16, 3)
    assert cfg.trainer.max_steps == 300 and list(cfg.data.val_sets) == ["holdout"]  # budget=search
    assert list(cfg.callbacks.learning_curve.val_steps) == [50, 100, 150, 200, 250]
    stored = RESULTS / f"search_{band}" / "search_config.yaml"
    if stored.is_file():
        args = json.loads((stored.parent / "search_done.json").read_text())["args"]
        extra = [a for a in args if not a.startswith(("hydra.", "hydra/", "+search=", "experiment="))]
        assert f"experiment=showdown_{band}" in args
        composed, ran = (
            _search_node(composed_search(f"showdown_{band}", extra).search),
            _search_node(OmegaConf.load(stored).search),
        )
        # settings.scale came after the band-B search, which ran at x2 (its default): a key it lacks must hold that
        assert composed["settings"].pop("scale") == ran["settings"].pop("scale", 2)
        assert composed["latency"].pop("scale") == ran["latency"].pop("scale", 2)
        # measure_front came later too; it acts only when latency is an objective, which the band searches are not
        assert "latency" not in composed["objectives"]
        composed.pop("measure_front")
        ran.pop("measure_front", None)
        assert composed == ran


def test_paired_differences_and_test_on_hand_made_numbers():
    from scipy.stats import t as student_t

    searched = {100: 35.10, 101: 35.30, 102: 35.00, 7: 40.0}  # seed 7: the released model lacks it, not paired
    released = {100: 35.00, 101: 35.10, 102: 35.10}
    d = showdown2.paired(searched, released)
    assert d["seeds"] == [100, 101, 102] and d["n"] == 3
    assert d["diffs"] == pytest.approx([0.10, 0.20, -0.10])
    mean = 0.2 / 3
    std = math.sqrt(((0.1 - mean) ** 2 + (0.2 - mean) ** 2 + (-0.1 - mean) ** 2) / 2)
    t = mean / (std / math.sqrt(3))
    assert (d["mean"], d["std"], d["t"]) == pytest.approx((mean, std, t))
    assert d["p"] == pytest.approx(2 * student_t.sf(abs(t), df=2))  # two-sided, n - 1 degrees of freedom
    one = showdown2.paired({100: 35.2}, {100: 35.0, 101: 35.1})
    assert one["n"] == 1 and one["diffs"] == pytest.approx([0.2]) and one["std"] is None and one["p"] is None
    same = showdown2.paired({1: 1.0, 2: 2.0}, {1: 0.5, 2: 1.5})  # no spread in the differences: no test
    assert same["mean"] == pytest.approx(0.5) and same["t"] is None


def test_the_report_shows_per_seed_values_differences_and_the_test():
    def row(name, genome, psnr):
        stored = {s: {"val": {"Set5": {"psnr": v, "ssim": 0.9}}} for s, v in psnr.items()}
        return showdown2._clean(showdown2.row_of(name, genome, stored, ["Set5"]))

    b = showdown2.zoo_genome("falsr_b")
    w = {100: 35.10, 101: 35.30, 102: 35.00}
    r = {100: 35.00, 101: 35.10, 102: 35.10}
    result = {
        "config": {
            "rungs": ["p1000", "p2000"],
            "eta": 2,
            "k": 6,
            "choice_seeds": [10],
            "seeds": [100, 101, 102],
            "search_seed": 0,
            "recipe": [],
            "benchmarks": ["Set5"],
            "store": "bench/results/runs.jsonl",
        },
        "bands": {"b": {"search": None}},
        "rows": [row("FALSR-B", b, r), row("searched_b", b, w)],
        "comparisons": [
            showdown2._clean({"searched": "searched_b", "released": "FALSR-B", "Set5": showdown2.paired(w, r)})
        ],
        "bicubic": {"Set5": {"psnr": 33.639, "ssim": 0.9292}},
    }
    text = showdown2.render(result)
    assert "| searched_b | 74.5G | 324,745 | 35.133 ± 0.153 |" in text
    assert "100: 35.100; 101: 35.300; 102: 35.000" in text
    assert "| searched_b - FALSR-B | Set5 | 100: +0.100, 101: +0.200, 102: -0.100 | +0.067 ± 0.153 | 0.76 |" in text
    assert text.rstrip().endswith("(showdown2.png)") and "Band B: not yet run" in text


def test_reported_runs_are_the_fidelity_benchs_and_the_choice_never_sees_a_test_set():
    import _runs
    import proxy_fidelity

    g = showdown2.zoo_genome("falsr_b")
    rungs = ["p1000", "p2000"]
    assert _runs.run_key(showdown2.final_overrides(g, 0, rungs, [])) == _runs.run_key(
        proxy_fidelity.overrides(g, "p2000", 0)
    )
    for rung in rungs:
        o = showdown2.rung_overrides(g, rung, 10, rungs, ["data.val_sets=[holdout,Set5]"])
        assert [x for x in o if x.startswith("data.val_sets=")] == ["data.val_sets=[holdout]"]
        assert f"trainer.max_steps={rung[1:]}" in o


def test_reported_seeds_that_chose_are_refused(capsys):
    with pytest.raises(SystemExit):
        showdown2.main(["--seeds", "10,11", "--choice-seeds", "10", "--report"])
    assert "reported seeds must take no part in the choice" in capsys.readouterr().err


@pytest.mark.slow
def test_round_two_toy_end_to_end(data_dir, tmp_path):
    args = [
        sys.executable,
        "bench/showdown2.py",
        "--results",
        str(tmp_path / "res"),
        "--sweeps",
        str(tmp_path / "sw"),
        "--store",
        str(tmp_path / "runs.jsonl"),
        "--zoo",
        str(tmp_path / "zoo"),
        "--conf",
        str(tmp_path / "conf"),
        "--bands",
        "b",
        "--k",
        "2",
        "--rungs",
        "q10,qref",
        "--eta",
        "2",
        "--choice-seeds",
        "10",
        "--seeds",
        "100,101",
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
        "PYTHONPATH": str(REPO / "src"),
    }
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "res"
    result = json.loads((res / "showdown2.json").read_text())
    # The search ran in the band with the pinned evaluator.
    stored = OmegaConf.load(res / "search_b" / "search_config.yaml").search
    assert (stored.settings.constraints.min_mult_adds, stored.settings.constraints.max_mult_adds) == PINNED["b"]
    assert stored.settings.prescreen_factor == 1 and stored.estimator == "extrapolated"
    journal = [json.loads(line) for line in (res / "search_b" / "journal.jsonl").read_text().splitlines()]
    assert all(40e9 <= r["mult_adds"] <= 74.5e9 for r in journal if r["status"] == "ok")
    # The selection: the best 2 by search score, halved to 1 at the last rung, on held-out images with seed 10 only.
    band = result["bands"]["b"]
    sel = band["selection"]
    ranked = sorted((r for r in journal if r["status"] == "ok"), key=lambda r: -r["psnr"])
    assert [c["key"] for c in band["candidates"]] == [r["key"] for r in ranked[:2]]
    assert [len(st["scores"]) for st in sel["stages"]] == [2, 1] and sel["winner"] in sel["stages"][1]["scores"]
    assert max(sel["stages"][0]["scores"], key=sel["stages"][0]["scores"].get) == sel["winner"]
    store = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    choice = [r for r in store if r["label"].startswith("showdown2/choice/")]
    reported = [r for r in store if not r["label"].startswith("showdown2/choice/")]
    assert len(choice) == 3 and all(r["seed"] == 10 and set(r["val"]) == {"holdout"} for r in choice)
    assert sorted(r["seed"] for r in reported) == [100, 100, 100, 101, 101, 101]
    # The report: rows with per-seed values, the paired comparison with n = 2, the plot.
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"FALSR-B", "FALSR-C", "searched_b"}
    assert rows["searched_b"]["genome"] == next(c["genome"] for c in band["candidates"] if c["key"] == sel["winner"])
    comp = result["comparisons"][0]
    assert (comp["searched"], comp["released"], comp["Set5"]["n"], comp["Set5"]["seeds"]) == (
        "searched_b",
        "FALSR-B",
        2,
        [100, 101],
    )
    w, r = rows["searched_b"]["per_seed"]["Set5"]["psnr"], rows["FALSR-B"]["per_seed"]["Set5"]["psnr"]
    assert comp["Set5"]["diffs"] == pytest.approx([w["100"] - r["100"], w["101"] - r["101"]])
    table = (res / "showdown2.md").read_text()
    assert "| searched_b - FALSR-B | Set5 |" in table and "| bicubic |" in table
    assert (res / "showdown2.png").stat().st_size > 1000
    # The winner's config and first-fresh-seed weights; evaluate.py reproduces its seed-100 Set5 PSNR.
    conf_file = tmp_path / "conf" / "searched_b.yaml"
    assert OmegaConf.load(conf_file).name == "searched_b" and "found by bench/showdown2.py" in conf_file.read_text()
    weights = torch.load(tmp_path / "zoo" / "searched_b.pt", weights_only=False)
    assert weights["genome"] == rows["searched_b"]["genome"]
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "model=genome",
            f"model.genome={weights['genome']}",
            f"model.weights={tmp_path / 'zoo' / 'searched_b.pt'}",
            "data.benchmarks=[Set5]",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())["datasets"]["Set5"]
    assert again["psnr"] == pytest.approx(w["100"], abs=1e-4)
    # The released architectures' first-seed R* weights, as <conf>_r.pt.
    for conf in ("falsr_b", "falsr_c"):
        assert (
            torch.load(tmp_path / "zoo" / f"{conf}_r.pt", weights_only=False)["genome"]
            == rows[showdown2.RELEASED[conf]]["genome"]
        )
    # A rerun trains nothing, except a run to export whose checkpoint is gone (as on a fresh clone of the store):
    # that one trains again and its record supersedes the old one.
    gone = next(r for r in store if r["label"] == "showdown2/s100/FALSR-C")
    shutil.rmtree(REPO / gone["run_dir"])
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "finished before" in proc.stdout
    assert [line.split("] trained ")[1].split()[0] for line in proc.stdout.splitlines() if "] trained " in line] == [
        "showdown2/s100/FALSR-C"
    ]
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == len(store) + 1
    assert (REPO / gone["run_dir"] / "checkpoints").is_dir()
    table = (res / "showdown2.md").read_text()
    before = table
    proc = subprocess.run(
        [sys.executable, "bench/showdown.py", "--round", "2", "--report", *args[2:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (res / "showdown2.md").read_text() == before
