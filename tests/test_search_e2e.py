"""End-to-end searches: real (tiny) training jobs through Hydra launchers, journal, reports, W&B, resume.

Budgets are tiny (3 training steps on 32x32 patches of 4 T91 images, one 128x128 validation image):
these tests check the machinery, not the quality of the front.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from falsr.images import read_rgb, write_png
from falsr.search.generation import new_search, propose
from falsr.search.hydra_glue import search_settings
from falsr.cost import genome_cost

REPO = Path(__file__).resolve().parents[1]
POPULATION, GENERATIONS = 4, 1  # the initial population and one more generation: 8 candidates


@pytest.fixture(scope="module")
def tiny_data(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    train = root / "train" / "T4"
    train.mkdir(parents=True)
    for path in sorted((data_dir / "train" / "T91").iterdir())[:4]:
        shutil.copy(path, train / path.name)
    bench = root / "benchmarks" / "Tiny"
    bench.mkdir(parents=True)
    hr = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_HR.png")[200:328, 200:328]
    lr = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_LR.png")[100:164, 100:164]
    write_png(bench / "img_001_SRF_2_HR.png", np.ascontiguousarray(hr))
    write_png(bench / "img_001_SRF_2_LR.png", np.ascontiguousarray(lr))
    return root


def search_args(data: Path, sweep: Path, *extra: str) -> list[str]:
    return ["+search=nsga2", f"paths.data_dir={data}", f"data.train_dir={data}/train/T4", "data.holdout=0", "data.val_sets=[Tiny]",
            "trainer.max_steps=3", "data.patch_size=32", "data.batch_size=4", "data.samples_per_epoch=12",
            f"search.settings.population_size={POPULATION}", f"search.generations={GENERATIONS}",
            f"hydra.sweep.dir={sweep}", *extra]


def env_for(tmp: Path) -> dict:
    return {**os.environ, "FALSR_CACHE_DIR": str(tmp / "cache"), "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}


def run_search(args: list[str], tmp: Path, script: str = "search.py", timeout: int = 600):
    return subprocess.run([sys.executable, script, *args], cwd=REPO, env=env_for(tmp), capture_output=True,
                          text=True, timeout=timeout)


def journal(sweep: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep / "journal.jsonl").read_text().splitlines() if line.strip()]


def check_outputs(sweep: Path) -> list[dict]:
    records = journal(sweep)
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == POPULATION * (GENERATIONS + 1), keys  # every genome once
    trained = [r for r in records if r["status"] == "ok"]
    assert trained and all(np.isfinite(r["psnr"]) and r["run_dir"] for r in trained)
    pareto = json.loads((sweep / "pareto.json").read_text())
    assert pareto["front"] and {r["key"] for r in pareto["front"]} <= {r["key"] for r in trained}
    assert (sweep / "pareto.md").read_text().startswith("| model | mult-adds | params |")
    for name in ("front_psnr_vs_mult_adds.png", "front_psnr_vs_params.png", "front_params_vs_mult_adds.png"):
        assert (sweep / name).stat().st_size > 1000
    assert (sweep / "search_state.pt").is_file()
    return records


@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory):
    """One search with the basic launcher and W&B (offline): the reference for the resume test."""
    tmp = tmp_path_factory.mktemp("basic")
    sweep = tmp / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "logger=wandb"), tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, proc


def test_search_with_basic_launcher_and_wandb(baseline):
    sweep, proc = baseline
    records = check_outputs(sweep)
    trained = [r for r in records if r["status"] == "ok"]
    # One offline W&B run per trained candidate, in its own job folder; one run for the search itself.
    for r in trained:
        runs = list((Path(r["run_dir"]) / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, r["run_dir"]
    assert list((sweep / "wandb").glob("offline-run-*-search-*"))
    out = proc.stdout + proc.stderr  # Hydra logs to the console (stdout)
    assert "generation 1 done" in out and "hypervolume" in out and "[gen 1]" in out


def test_search_with_joblib_launcher(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_outputs(sweep)


def test_search_with_submitit_local_launcher(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"),
                      tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_outputs(sweep)


def test_sigkill_mid_generation_then_resume(tiny_data, baseline, tmp_path):
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep)
    proc = subprocess.Popen([sys.executable, "search.py", *args], cwd=REPO, env=env_for(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once two candidates of the initial generation are journaled
        trained = [r for r in journal(sweep) if r.get("job_num") is not None] if (sweep / "journal.jsonl").exists() else []
        if len(trained) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = journal(sweep)
    assert 2 <= len(before) < POPULATION * (GENERATIONS + 1)

    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = check_outputs(sweep)
    assert records[: len(before)] == before  # finished candidates were not trained again
    # The same RNG stream: the resumed search proposes exactly the genomes of the uninterrupted one.
    assert sorted(r["genome"] for r in records) == sorted(r["genome"] for r in journal(baseline[0]))


FAULTY_APP = '''
import os, sys
import hydra
from omegaconf import open_dict
from falsr.cli import CONF_DIR
from falsr.train import train

@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg):
    key = cfg.get("candidate", {}).get("key")
    if key == os.environ["NAN_KEY"]:
        return {**train(cfg), "psnr": float("nan")}     # training "diverged"
    if key == os.environ["CRASH_KEY"]:
        raise RuntimeError("injected crash")             # the job itself dies
    return train(cfg)

if __name__ == "__main__":
    main()
'''


def test_failed_candidates_are_recorded_and_the_search_goes_on(tiny_data, tmp_path):
    from omegaconf import OmegaConf

    search = OmegaConf.load(REPO / "conf" / "search" / "nsga2.yaml")
    search.settings.population_size = POPULATION
    settings = search_settings(search)
    first = [o.genome for o in propose(new_search(settings, seed=0))
             if genome_cost(o.genome).mult_adds <= settings.constraints.max_mult_adds]
    nan_key, crash_key = first[0].key, first[1].key
    app = tmp_path / "faulty_search.py"
    app.write_text(FAULTY_APP)
    sweep = tmp_path / "sweep"
    env = {**env_for(tmp_path), "NAN_KEY": nan_key, "CRASH_KEY": crash_key}
    proc = subprocess.run([sys.executable, str(app), *search_args(tiny_data, sweep)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_key = {r["key"]: r for r in check_outputs(sweep)}
    assert by_key[nan_key]["status"] == "failed" and "NaN" in by_key[nan_key]["error"]
    assert by_key[crash_key]["status"] == "failed" and "injected crash" in by_key[crash_key]["error"]
    front = json.loads((sweep / "pareto.json").read_text())["front"]
    assert nan_key not in {r["key"] for r in front} and crash_key not in {r["key"] for r in front}


def test_full_training_of_the_chosen_models(tiny_data, tmp_path):
    """search.full_train=true: the models chosen by crowding distance are trained through the same launcher."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, "search.generations=0", "search.report_k=2", "search.full_train=true")
    proc = run_search(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = json.loads((sweep / "pareto.json").read_text())["chosen_for_full_training"]
    full = json.loads((sweep / "full_training.json").read_text())
    assert 1 <= len(chosen) <= 2 and [r["genome"] for r in full] == chosen
    assert all(r["status"] == "ok" and np.isfinite(r["psnr"]) for r in full)
    assert len(journal(sweep)) == POPULATION  # full-training jobs are not search candidates


@pytest.mark.parametrize("args, fragment", [
    ([], "no search settings: run `python search.py +search=nsga2`"),
    (["+search=nsga2", "search.settings.crowding=foo"], "crowding='foo'"),
    (["+search=nsga2", "search.resume=/nonexistent/sweep"], "no such sweep folder"),
    (["+search=nsga2", "trainer.max_steps=1,2"], "give single values only"),
])
def test_search_user_errors_are_one_line(args, fragment, tmp_path):
    proc = run_search(args + [f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and fragment in proc.stderr, proc.stderr
