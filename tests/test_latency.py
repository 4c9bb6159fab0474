"""Latency: the per-part lookup table, its cache key, its resumable profiling and its agreement with measurement.

Timings on a shared machine move; every comparison here is between medians, relative, with a stated tolerance.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from falsr.latency import LatencyError, LatencySettings, deploy_lr_size
from falsr.latency.measure import measure_network
from falsr.latency.table import LatencyTable, genome_parts, load_table, space_keys
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome, SearchSpace, using_space

REPO = Path(__file__).resolve().parents[1]
SMALL = "conv_f16_k3_b2_isskip.invbottleneck_e2_f16_k3_b1_noskip-11_1"  # two cells, a concat, both ops
TINY_SPACE = [
    "space.ops=[conv]",
    "space.channels=[16]",
    "space.kernels=[3]",
    "space.residuals=[true]",
    "space.repeats=[1,2]",
    "space.n_cells=2",
]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def bench(*args, timeout=300):
    """bench/latency.py with these arguments."""
    return subprocess.run(
        [sys.executable, "bench/latency.py", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "falsr.latency", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=timeout,
    )


def test_default_input_is_the_lr_of_a_720p_output():
    assert deploy_lr_size(2) == (360, 640) and LatencySettings().lr_size == (360, 640)
    assert LatencySettings(lr_size=480).lr_size == (480, 480)


def test_the_cache_key_changes_with_threads_precision_backend_and_size(tmp_path):
    base = dict(backend="eager", precision="fp32", threads=1, lr_size=(32, 48), cache_dir=str(tmp_path))
    variants = [
        base,
        {**base, "threads": 2},
        {**base, "precision": "bf16"},
        {**base, "backend": "onnxruntime"},
        {**base, "backend": "compile"},
        {**base, "lr_size": (48, 32)},
        {**base, "memory_format": "contiguous"},
    ]
    paths = {LatencySettings(**v).table_path() for v in variants}
    assert len(paths) == len(variants)
    # A table moved under another setting's name is refused, never read.
    one, other = LatencySettings(**base), LatencySettings(**{**base, "threads": 2})
    LatencyTable(one).profile(["head"], progress=False)
    other.table_path().write_text(one.table_path().read_text())
    with pytest.raises(LatencyError, match="other settings"):
        LatencyTable(other)


def test_parts_cover_every_genome_of_the_space():
    space = SearchSpace(ops=("conv", "invbottleneck_e2"), channels=(16, 32), kernels=(3,), repeats=(1, 2), n_cells=3)
    import random

    with using_space(space):
        keys = set(space_keys())
        rng = random.Random(0)
        for _ in range(200):
            g = Genome.random(3, rng)
            assert set(genome_parts(g)) <= keys


def test_the_table_sum_reproduces_a_measured_small_network(tmp_path):
    """Predicted (sum of parts) vs measured end to end, both medians of 7 runs, eager and onnxruntime.

    Stated tolerance: within 40% (the parts are timed as separate calls, so per-call overhead and cache effects
    do not add exactly; bench/latency.py measures the error on 30+ genomes). On a loaded machine the check is
    retried twice before it fails."""
    for backend in ("eager", "onnxruntime"):
        settings = LatencySettings(backend=backend, lr_size=(96, 128), cache_dir=str(tmp_path), repeats=7)
        table = LatencyTable(settings)
        table.profile(genome_parts(SMALL), progress=False)
        predicted = table.predict(SMALL)
        ratios = []
        for _ in range(3):
            ratios.append(predicted / measure_network(SMALL, settings).ms)
            if abs(ratios[-1] - 1) < 0.4:
                break
        assert abs(ratios[-1] - 1) < 0.4, (backend, ratios)


def test_bf16_eager_runs_and_onnxruntime_bf16_is_refused(tmp_path):
    t = measure_network(SMALL, LatencySettings(backend="eager", precision="bf16", lr_size=(16, 16), repeats=3))
    assert t.ms > 0 and t.runs == 3
    with pytest.raises(LatencyError, match="bf16"):
        LatencySettings(backend="onnxruntime", precision="bf16")


def test_compile_compiles_every_part_past_dynamos_recompile_limit(monkeypatch):
    """A table's parts share their forward code; past dynamo's recompile limit they would run eager unnoticed.
    With the limit at 1, the second part must still be compiled (a graph of its own), not run eager."""
    import torch
    from torch._dynamo.utils import counters

    from falsr.latency.measure import runner
    from falsr.latency.table import part

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    settings = LatencySettings.from_dict({"backend": "compile", "precision": "fp32", "threads": 1, "lr_size": [8, 8]})
    graphs = []
    for key in ("cell/conv_f16_k3_b1_isskip/32", "cell/conv_f16_k3_b1_noskip/32"):
        module, shapes = part(key, settings)
        runner(module, shapes, settings)()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[0] + 1, graphs


def test_a_missing_table_is_a_one_line_error_naming_the_command(tmp_path):
    settings = LatencySettings(cache_dir=str(tmp_path), lr_size=(8, 8))
    with pytest.raises(LatencyError, match="python -m falsr.latency profile backend=onnxruntime"):
        load_table(settings, genome_parts(SMALL))


@pytest.mark.parametrize(
    "args, words",
    [
        (["profile", "backend=tvm"], ["backend", "eager", "onnxruntime"]),
        (["profile", "precision=int8"], ["precision", "fp32", "bf16"]),
        (["profile", "thread=2"], ["latency.thread", "threads"]),
        (["profile", "backend=onnxruntime", "precision=bf16"], ["bf16", "onnxruntime"]),
    ],
)
def test_bad_settings_are_one_line_errors(args, words):
    out = cli(*args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert all(w in out.stderr for w in words), out.stderr


def test_profile_resumes_after_a_kill(tmp_path):
    """Killed (SIGKILL) once a few entries are written, then run again: the entries already written are kept (not
    measured again) and the table ends complete; a torn last line is measured again."""
    args = ["profile", "backend=eager", "lr_size=[24,24]", f"cache_dir={tmp_path}", "repeats=3", *TINY_SPACE]
    proc = subprocess.Popen(
        [sys.executable, "-m", "falsr.latency", *args, "min_run_ms=200"],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            files = list(tmp_path.glob("*.jsonl"))
            if files and len(files[0].read_text().splitlines()) >= 4:  # the header and 3 entries
                break
            time.sleep(0.05)
        else:
            pytest.fail("profile wrote no entries in 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path = files[0]
    before = [json.loads(line) for line in path.read_text().splitlines()[1:] if line.endswith("}")]
    assert 3 <= len(before) < 14
    with open(path, "a") as fh:
        fh.write('{"key": "up/16", "ms"')  # torn by a kill mid-write
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:] if line.endswith("}")]
    keys = [e["key"] for e in entries]
    assert entries[: len(before)] == before  # kept as they were
    assert len(keys) == len(set(keys)) == 14  # each part once: the tiny space has 14
    assert json.loads(out.stdout.strip().splitlines()[-1])["measured_now"] == 14 - len(before)


def test_parts_are_positive_and_a_bigger_network_is_predicted_slower(tmp_path):
    """Every part of a real network has a positive time, and a bigger network is predicted slower."""
    settings = LatencySettings(backend="onnxruntime", lr_size=(32, 32), cache_dir=str(tmp_path), repeats=5)
    table = LatencyTable(settings)
    big = "conv_f64_k3_b4_isskip.conv_f64_k3_b4_isskip-11_1"
    for g in (SMALL, big):
        table.profile(genome_parts(g), progress=False)
    assert all(ms > 0 for ms in table.entries.values())
    assert genome_cost(big).mult_adds > 5 * genome_cost(SMALL).mult_adds
    assert table.predict(big) > table.predict(SMALL)


@pytest.mark.slow
def test_the_latency_bench_quick_writes_its_results_and_resumes(tmp_path):
    """bench/latency.py --quick: per backend/precision the table's Spearman and MAPE against measurement and
    mult-adds' Spearman, in latency.json and latency.md; run again, it measures nothing twice (resumable)."""
    out = tmp_path / "latency.json"
    args = [
        sys.executable,
        "bench/latency.py",
        "--quick",
        "--runs",
        "eager/fp32",
        "onnxruntime/fp32",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    first = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"eager/fp32", "onnxruntime/fp32"}
    for r in result["results"].values():
        assert r["n"] == 5 and -1 <= r["spearman"] <= 1 and -1 <= r["spearman_mult_adds"] <= 1 and r["mape"] >= 0
        assert [g["label"] for g in r["genomes"]][:3] == ["FALSR-A", "FALSR-B", "FALSR-C"]
    for r in result["results"].values():  # 5 genomes: too few for an interval, and none is claimed
        assert r["spearman_ci95"] is None and r["mape_ci95"] is None and r["spearman_mult_adds_ci95"] is None
    assert "| eager/fp32 | 5 |" in out.with_suffix(".md").read_text()
    # the README's table: released and searched models and bicubic, end to end in every run
    for rows in result["models"].values():
        assert [m["model"] for m in rows] == ["FALSR-A", "FALSR-B", "FALSR-C", "searched_a", "searched_b", "Bicubic"]
        assert all(m["ms"] > 0 for m in rows)
    assert "| Bicubic |" in out.with_suffix(".md").read_text()
    runs = out.with_name("latency_runs.jsonl").read_text()
    # per run: the 5 genomes before the table and after it, then searched_a, searched_b and bicubic (FALSR-A/B/C
    # are among the 5: not measured again)
    assert len(runs.splitlines()) == 2 * (5 + 5 + 3)
    for r in result["results"].values():  # measured = the mean of the passes; the retest is their difference
        passes = [g["passes_ms"] for g in r["genomes"]]
        assert all(g["measured_ms"] == pytest.approx(sum(p) / 2) for g, p in zip(r["genomes"], passes))
        assert r["retest_mape"] == pytest.approx(sum(abs(a - b) / ((a + b) / 2) for a, b in passes) / 5)
        assert r["retest_spearman"] <= 1 and r["mape_pass1"] >= 0 and r["mape_pass2"] >= 0
    again = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert out.with_name("latency_runs.jsonl").read_text() == runs  # nothing measured again
    assert json.loads(out.read_text())["results"] == result["results"]
    assert json.loads(out.read_text())["models"] == result["models"]
    # --models redoes only the models' table under the stored settings: a model without a stored measurement (as
    # after a new searched_a) is measured, nothing else; the panel's rows and statistics are kept.
    searched_a = result["models"]["eager/fp32"][3]["genome"]
    kept = [line for line in runs.splitlines() if json.loads(line)["genome"] != searched_a]
    out.with_name("latency_runs.jsonl").write_text("\n".join(kept) + "\n")
    redo = bench("--models", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), timeout=600)
    assert redo.returncode == 0, redo.stderr[-2000:]
    measured = out.with_name("latency_runs.jsonl").read_text().splitlines()[len(kept) :]
    assert [json.loads(line)["label"] for line in measured] == ["searched_a", "searched_a"]
    updated = json.loads(out.read_text())
    assert updated["results"] == result["results"] and updated["models_remeasured"]
    assert [m["model"] for m in updated["models"]["onnxruntime/fp32"]][3] == "searched_a"
    assert "python bench/latency.py --models" in out.with_suffix(".md").read_text()


def test_summary_prints_measured_and_predicted_latency(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "falsr.summary",
            "model=falsr_b",
            "latency.show=true",
            "latency.lr_size=[16,24]",
            "latency.backend=eager",
            f"latency.cache_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["latency_ms"] > 0 and result["latency_predicted_ms"] > 0 and result["mult_adds"] == 74502144000
    assert "latency (eager fp32 1 thread(s) x2 16x24, batch 1): measured" in out.stdout
    plain = subprocess.run(
        [sys.executable, "-m", "falsr.summary", "model=falsr_b"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=300,
    )
    assert "latency_ms" not in plain.stdout  # off by default: a summary stays instant


def test_the_latency_bench_rescores_its_stored_measurements_with_intervals(tmp_path):
    """--rescore recomputes the statistics of the committed 32-genome results from their stored rows, without
    measuring: the same point estimates, each inside its bootstrap 95% interval, and the intervals in the report."""
    stored = json.loads((REPO / "bench/results/latency.json").read_text())
    out = tmp_path / "latency.json"
    out.write_text(json.dumps(stored))
    done = bench("--rescore", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert not (tmp_path / "latency_runs.jsonl").exists()  # nothing measured
    for name, r in result["results"].items():
        before = stored["results"][name]
        assert (
            r["n"] == 32 and abs(r["spearman"] - before["spearman"]) < 1e-12 and abs(r["mape"] - before["mape"]) < 1e-12
        )
        for stat in ("spearman", "mape", "spearman_mult_adds"):
            lo, hi = r[stat + "_ci95"]
            assert lo <= r[stat] <= hi and hi - lo > 0, (name, stat, lo, r[stat], hi)
    md = out.with_suffix(".md").read_text()
    assert "--rescore" in md and "| eager/fp32 | 32 | 0.986 [" in md


def test_the_latency_bench_rescore_without_results_says_what_to_run(tmp_path):
    done = bench("--rescore", "--out", str(tmp_path / "none.json"), timeout=120)
    assert done.returncode == 1 and "does not exist: run `python bench/latency.py --out" in done.stderr


def test_the_drift_bench_reports_rounds_and_a_warm_up_ratio(tmp_path):
    """bench/latency_drift.py --quick measures the probe once per round and writes the summary and its report; the
    summary's arithmetic on hand-made rounds: a first round twice the later median reads 2.0."""
    out = tmp_path / "drift.json"
    run = subprocess.run(
        [sys.executable, "bench/latency_drift.py", "--quick", "--out", str(out)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    s = json.loads(out.read_text())["summary"]["eager/fp32"]
    assert s["rounds"] == 2 and len(s["ms"]) == 2 and all(m > 0 for m in s["ms"])
    assert s["first_over_later"] == pytest.approx(s["ms"][0] / s["ms"][1])
    assert "| eager/fp32 | 2 |" in out.with_suffix(".md").read_text()
    assert len((tmp_path / "drift_runs.jsonl").read_text().splitlines()) == 2

    sys.path.insert(0, str(REPO / "bench"))
    from latency_drift import summarise

    rows = [{"run": "x", "round": k, "ms": ms} for k, ms in enumerate([200.0, 100.0, 100.0, 120.0])]
    got = summarise(rows)["x"]
    assert got["max_over_min"] == 2.0 and got["first_over_later"] == 2.0 and got["ms"] == [200.0, 100.0, 100.0, 120.0]
