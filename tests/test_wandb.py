"""W&B read-back: what the offline `.wandb` files recorded, checked against the search journal.

Two tiny searches (3 training steps on 32x32 patches of 4 T91 images, population 4) in one W&B project,
both in sweep folders named `sweep`: each must be its own group, every candidate run named by its
generation and key, its config holding the genome decomposed and its summary the journal's PSNR.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from falsr.space.cost import genome_cost
from falsr.space.genome import Genome
from falsr.training.wandb_utils import arch_config, search_group

pytest.importorskip("wandb")

from test_search_e2e import POPULATION, journal, search_args
from wandb_reader import Incomplete, finished_records, read_records, read_run

REPO = Path(__file__).resolve().parents[1]


def run_search(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    # This checkout's src first: its falsr package and its hydra_plugins sweeper, whatever is installed.
    env = {
        **os.environ,
        "FALSR_CACHE_DIR": str(tmp / "cache"),
        "WANDB_SILENT": "true",
        "WANDB_MODE": "offline",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "search.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def test_arch_config_decomposes_the_genome():
    genome = Genome.from_string("conv_f64_k3_b4_isskip.gconv2_f16_k1_b1_noskip-11_1")
    config = arch_config(genome, (240, 240), "search.settings.lr_size")
    assert config["arch/cell0/op"] == "conv" and config["arch/cell0/width"] == 64 and config["arch/cell0/kernel"] == 3
    assert config["arch/cell0/repeats"] == 4 and config["arch/cell0/residual"] is True
    assert config["arch/cell1/op"] == "gconv2" and config["arch/cell1/residual"] is False  # 1 repeat: no add
    assert config["arch/n_cells"] == 2 and config["arch/connections"] == 3 and config["arch/key"] == genome.key
    assert config["arch/mult_adds"] == genome_cost(genome, (240, 240)).mult_adds == genome_cost(genome).mult_adds // 4
    assert config["arch/lr_size"] == "240x240" and config["arch/lr_size_from"] == "search.settings.lr_size"


def check_search(sweep: Path, lr_size: tuple[int, int], generations: int) -> str:
    """Check every candidate run of one search against its journal; return the search's group."""
    records = journal(sweep)
    trained = [r for r in records if r.get("job_num") is not None]
    # every candidate not cached or over the mult-adds cap was trained: one job, one W&B run each
    assert {r["generation"] for r in trained} == set(range(generations + 1))
    assert len(trained) <= POPULATION * (generations + 1)
    assert any(r["status"] == "ok" for r in trained)
    group = search_group(sweep)
    for r in trained:
        runs = list((Path(r["run_dir"]) / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, r["run_dir"]
        run = read_run(runs[0])
        assert run["group"] == group and run["project"] == "falsr"
        assert run["name"] == f"g{r['generation']}-{r['key'][:8]}"
        genome = Genome.from_string(r["genome"])
        config = run["config"]
        assert config["arch/key"] == r["key"] and config["candidate/key"] == r["key"]
        assert config["candidate/generation"] == r["generation"] and config["candidate/origin"] == r["origin"]
        assert config["arch/n_cells"] == genome.n_cells and config["arch/connections"] == sum(genome.connections)
        for j, cell in enumerate(genome.cell_specs):
            assert [config[f"arch/cell{j}/{k}"] for k in ("op", "width", "kernel", "repeats", "residual")] == [
                cell.op,
                cell.channels,
                cell.kernel,
                cell.repeats,
                cell.has_skip,
            ]
        cost = genome_cost(genome, lr_size)
        assert (config["arch/mult_adds"], config["arch/params"]) == (cost.mult_adds, cost.params)
        assert config["arch/lr_size"] == f"{lr_size[0]}x{lr_size[1]}"
        assert config["arch/lr_size_from"] == "search.settings.lr_size"
        summary = run["summary"]
        assert summary["status"] == r["status"]
        if r["status"] == "ok":  # bit for bit: W&B stores the float's shortest round-trip text
            assert summary["psnr"] == r["psnr"] and summary["ssim"] == r["ssim"]
            assert summary["psnr/Tiny"] == r["psnr"] and summary["ssim/Tiny"] == r["ssim"]
            assert summary["train_seconds"] == r["train_seconds"] and summary["mult_adds"] == r["mult_adds"]

    # The search's own run: in the same group; its last log holds ALL candidates and the hypervolume history.
    search_runs = sorted((sweep / "wandb").glob("offline-run-*-search-*"))
    assert len(search_runs) == generations + 1  # one (resumed) per generation
    runs = [read_run(p) for p in search_runs]
    assert {(r["group"], r["job_type"], r["name"]) for r in runs} == {(group, "search", "search-sweep")}
    last = runs[-1]
    assert last["summary"]["generation"] == generations
    table = json.loads((search_runs[-1] / "files" / last["summary"]["candidates"]["path"]).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    latest = {r["key"]: r for r in records}
    assert sorted(row["key"] for row in rows) == sorted(latest)
    for row in rows:
        r = latest[row["key"]]
        assert row["name"] == f"g{r['generation']}-{r['key'][:8]}" and row["status"] == r["status"]
        assert row["genome"] == r["genome"] and row["generation"] == r["generation"]
        if r["status"] == "ok":
            assert (row["psnr"], row["ssim"], row["mult_adds"]) == (r["psnr"], r["ssim"], r["mult_adds"])
    hv = json.loads((search_runs[-1] / "files" / last["summary"]["hypervolume_history"]["path"]).read_text())
    assert [row[0] for row in hv["data"]] == list(range(generations + 1))
    logged = [run["summary"]["hypervolume"] for run in runs]  # what the driver computed, generation by generation
    assert [row[1] for row in hv["data"]] == pytest.approx(logged, abs=1e-12)
    assert all(math.isfinite(v) for v in logged) and logged[-1] > 0  # psnr_min=0: every trained model counts
    assert {k for k in last["summary"] if k.startswith("plots/")} == {
        "plots/front_psnr_vs_mult_adds",
        "plots/front_psnr_vs_params",
        "plots/front_params_vs_mult_adds",
    }
    assert "hypervolume_plot_table" in last["summary"]
    return group


def test_two_searches_in_one_project_read_back(tiny_data, tmp_path):
    # b also trains its chosen model "fully" (3 steps too) after the search: that run joins b's group.
    searches = {"a": ((480, 480), 1, []), "b": ((240, 240), 0, ["search.full_train=true", "search.report_k=1"])}
    groups = {}
    for name, (lr_size, generations, extra) in searches.items():
        sweep = tmp_path / name / "sweep"
        proc = run_search(
            search_args(
                tiny_data,
                sweep,
                "logger=wandb",
                f"search.generations={generations}",
                f"search.settings.lr_size=[{lr_size[0]},{lr_size[1]}]",
                "search.hypervolume_box.psnr_min=0.0",
                *extra,
            ),
            tmp_path / name,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        groups[name] = check_search(sweep, lr_size, generations)
    assert groups["a"] != groups["b"]  # same folder name "sweep", different searches

    sweep = tmp_path / "b" / "sweep"
    full = json.loads((sweep / "full_training.json").read_text())
    candidates = {str(Path(r["run_dir"]).resolve()) for r in journal(sweep) if r.get("run_dir")}
    runs = [
        read_run(p)
        for p in sorted(sweep.glob("*/wandb/offline-run-*"))
        if str(p.parents[1].resolve()) not in candidates
    ]
    assert len(full) == len(runs) == 1 and full[0]["status"] == "ok"
    assert runs[0]["group"] == groups["b"]
    assert runs[0]["name"] == f"full-{Genome.from_string(full[0]['genome']).key[:8]}"
    assert runs[0]["summary"]["psnr"] == full[0]["psnr"] and "candidate/key" not in runs[0]["config"]


def test_the_reader_reads_what_wandb_wrote(tmp_path):
    """The framing reader against a run written here: multi-block records (a 100 KB config value) included."""
    # Written by a fresh interpreter, as a search job writes its run: W&B state left in this process by other
    # tests (earlier runs, Lightning's WandbLogger) must not decide what the file holds.
    code = (
        "import wandb; run = wandb.init(project='falsr-test', group='G', name='N', mode='offline', "
        f"dir={str(tmp_path)!r}, config={{'big': 'x' * 100_000, 'arch/cell0/op': 'conv'}}); "
        "run.summary.update({'psnr/Set5': 37.123456789}); run.finish()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = next((tmp_path / "wandb").glob("offline-run-*"))
    assert any(r.WhichOneof("record_type") == "run" for r in read_records(next(path.glob("run-*.wandb"))))
    back = read_run(path)
    assert (back["group"], back["name"]) == ("G", "N")
    assert back["config"]["big"] == "x" * 100_000 and back["config"]["arch/cell0/op"] == "conv"
    assert back["summary"]["psnr/Set5"] == 37.123456789

    # A file wandb-core has not flushed yet (wandb.finish() does not wait for it): the header alone, or a record
    # cut short, is not taken for a finished run.
    data = next(path.glob("run-*.wandb")).read_bytes()
    for cut, name in ((7, "header"), (40_000, "half")):  # 40 KB: inside the 100 KB run record
        (tmp_path / name).write_bytes(data[:cut])
    assert read_records(tmp_path / "header") == []
    with pytest.raises(AssertionError, match="no exit record"):
        finished_records(tmp_path / "header", timeout=0.2)
    with pytest.raises(Incomplete, match="cut short"):
        read_records(tmp_path / "half")


def test_a_train_run_and_a_failed_run_read_back(data_dir, tmp_path):
    """Outside a search: group <task>, name <task>-<model>, costs at 480x480 (no search.settings.lr_size);
    a job that fails after its run started (a missing checkpoint) still says so in the run summary."""
    from falsr.training.train import train
    from test_train import TINY, tiny

    metrics = train(tiny(data_dir, tmp_path / "ok", "logger=wandb", "trainer.max_steps=2"))
    assert metrics["status"] == "ok"
    run = read_run(next((tmp_path / "ok" / "wandb").glob("offline-run-*")))
    assert (run["group"], run["name"]) == ("train", "train-custom")
    genome = Genome.from_string(TINY)
    assert run["config"]["arch/mult_adds"] == genome_cost(genome).mult_adds == metrics["mult_adds"]
    assert run["config"]["arch/lr_size_from"] == "default" and run["config"]["arch/cell1/width"] == 16
    assert run["summary"]["status"] == "ok" and run["summary"]["psnr"] == metrics["psnr"]
    assert run["summary"]["train_seconds"] == metrics["train_seconds"]
    for name, result in metrics["val"].items():  # every validation set (here the held-out images)
        assert [run["summary"][f"{m}/{name}"] for m in ("psnr", "ssim")] == [result["psnr"], result["ssim"]]

    failed = train(
        tiny(
            data_dir,
            tmp_path / "failed",
            "logger=wandb",
            "ignore_errors=true",
            "logger.wandb.name=mine",
            f"ckpt_path={tmp_path / 'missing.ckpt'}",
        )
    )
    assert failed["status"] == "failed"
    run = read_run(next((tmp_path / "failed" / "wandb").glob("offline-run-*")))
    assert run["name"] == "mine"  # a name given on the command line is kept
    assert run["summary"]["status"] == "failed" and run["summary"]["error"] == failed["error"]
