"""x3 and x4 networks (issue 25): the upsampler, the cost model, weights that know their scale, and the commands.

The data and protocol side (MATLAB downscale at 1/3 and 1/4, the published bicubic rows) is tested in
tests/test_bicubic.py and tests/test_resize.py.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from falsr.errors import UserError
from falsr.space.cost import default_lr_size, genome_cost, smallest_cost, smallest_genome
from falsr.space.genome import Genome, parse_genome
from falsr.space.network import build_network
from falsr.weights.files import load_weights, save_weights
from falsr.weights.model import build_model

REPO = Path(__file__).resolve().parents[1]
FALSR_B = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampler_shapes_at_every_scale(scale):
    net = build_network(FALSR_B, scale=scale)
    out = net(torch.rand(2, 1, 7, 9))
    assert out.shape == (2, 1, 7 * scale, 9 * scale) and net.scale == scale
    assert net.upsampler.conv.out_channels == 8 * scale * scale
    assert (net.upsampler.skip is None) == (scale == 2)  # x2 is FALSR's upsampler: no projection


def test_the_same_genome_shares_every_tensor_but_the_upsampler():
    x2, x4 = build_network(FALSR_B).state_dict(), build_network(FALSR_B, scale=4).state_dict()
    differ = {k for k in x2 if x2[k].shape != x4[k].shape} | (set(x2) ^ set(x4))
    assert differ and all(k.startswith("upsampler.") for k in differ)


def counted(genome: Genome, h: int, w: int, scale: int) -> tuple[int, int]:
    net = build_network(genome, scale=scale)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 1, h, w))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2


@pytest.mark.parametrize("scale", [3, 4])
def test_costs_at_x3_x4_equal_the_flop_counter(scale):
    rng = random.Random(scale)
    for n in (1, 3, 7):
        for _ in range(8):
            g = Genome.random(n, rng)
            h, w = rng.randint(3, 8), rng.randint(3, 8)
            cost = genome_cost(g, (h, w), scale)
            assert counted(g, h, w, scale) == (cost.params, cost.mult_adds), str(g)


def test_x2_costs_and_lr_sizes_stay_the_papers():
    assert genome_cost(FALSR_B).mult_adds == genome_cost(FALSR_B, (480, 480), 2).mult_adds
    assert default_lr_size(2) == (480, 480)  # Table I
    assert default_lr_size(3) == (240, 426) and default_lr_size(4) == (180, 320)  # a 1280x720 output


@pytest.mark.parametrize("scale", [3, 4])
def test_smallest_network_at_a_scale_is_exact(scale):
    """The dynamic programme's minimum agrees with the cost of the genome it returns and bounds random genomes."""
    rng = random.Random(0)
    low = smallest_cost(lr_size=(10, 10), scale=scale)
    assert genome_cost(smallest_genome(scale=scale), (10, 10), scale).mult_adds == low.mult_adds
    assert all(genome_cost(Genome.random(7, rng), (10, 10), scale).mult_adds >= low.mult_adds for _ in range(50))


def test_a_scale_outside_2_3_4_is_a_one_line_error():
    with pytest.raises(UserError, match="data.scale=5 is not supported: set data.scale to one of 2, 3, 4"):
        build_network(FALSR_B, scale=5)
    with pytest.raises(UserError, match="data.scale=5 is not supported"):
        genome_cost(FALSR_B, scale=5)


def test_weights_record_their_scale_and_refuse_another(tmp_path):
    net = build_network(FALSR_B, scale=4)
    path = save_weights(net, tmp_path / "x4.pt")
    assert torch.load(path, weights_only=False)["scale"] == 4
    built = build_model(FALSR_B, weights=str(path))  # no scale configured: the file's
    assert built.scale == 4 and torch.equal(built.upsampler.skip.weight, net.upsampler.skip.weight)
    with pytest.raises(UserError, match=r"x4.pt is a x4 network, but the model is built at x3: set data.scale=4"):
        build_model(FALSR_B, weights=str(path), scale=3)
    with pytest.raises(UserError, match=r"is a x4 network, but the model is built at x2"):
        load_weights(build_network(FALSR_B), path)


def test_the_released_graphs_load_at_x2_only(pretrained_dir):
    net = build_model(FALSR_B, weights=str(pretrained_dir / "FALSR-B.pb"))
    assert net.scale == 2
    with pytest.raises(UserError, match="FALSR-B.pb is a x2 network, but the model is built at x4: set data.scale=2"):
        build_model(FALSR_B, weights=str(pretrained_dir / "FALSR-B.pb"), scale=4)


def test_onnx_export_keeps_the_scale(tmp_path):
    pytest.importorskip("onnxruntime")
    from falsr.protocol.pipeline import upscale_rgb
    from falsr.weights.export import OnnxNet, export_onnx

    net = build_network(FALSR_B, scale=3).eval()
    onnx = OnnxNet(export_onnx(net, tmp_path / "x3.onnx"))
    lr = (torch.rand(20, 22, 3) * 255).to(torch.uint8).numpy()
    out, ref = upscale_rgb(onnx, lr), upscale_rgb(net, lr)
    assert onnx.scale == 3 and out.shape == ref.shape == (60, 66, 3)
    assert abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_tiled_inference_at_x4_equals_whole_image():
    from falsr.protocol.pipeline import predict_y

    net = build_network(FALSR_B, scale=4).eval()
    y = torch.rand(1, 1, 37, 29)
    assert torch.allclose(predict_y(net, y, tile=12), predict_y(net, y), atol=1e-5)


def run(script: str, *args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FALSR_CACHE_DIR": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_train_evaluate_upscale_at_x4(tiny_data, tmp_path):
    """The README's x4 example on tiny data: train.py data.scale=4, then evaluate.py and upscale.py with the files
    it wrote (upscale.py has no data.scale: it reads the scale from the weights)."""
    run_dir = tmp_path / "run"
    train = run(
        "train.py",
        "model=falsr_c",
        "data.scale=4",
        f"paths.data_dir={tiny_data}",
        f"data.train_dir={tiny_data}/train/T4",
        "data.holdout=0",
        "data.val_sets=[Tiny]",
        "trainer.max_steps=4",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        "scheduler.warmup_steps=1",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "save_weights=true",
        f"hydra.run.dir={run_dir}",
        tmp=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["scale"] == 4 and metrics["status"] == "ok"
    assert metrics["mult_adds"] == genome_cost(metrics["genome"], (180, 320), 4).mult_adds
    weights = run_dir / "weights.pt"

    ev_dir = tmp_path / "eval"  # the Lightning checkpoint: its scale is read off its upsampler
    ev = run(
        "evaluate.py",
        "model=falsr_c",
        f"model.weights={metrics['best_ckpt']}",
        "data.scale=4",
        f"paths.data_dir={tiny_data}",
        "data.benchmarks=[Tiny]",
        f"hydra.run.dir={ev_dir}",
        tmp=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    results = json.loads((ev_dir / "results.json").read_text())
    assert (results["scale"], results["border"], results["mult_adds_lr_size"]) == (4, 4, [180, 320])

    out = tmp_path / "up"
    lr = tiny_data / "benchmarks" / "Tiny" / "img_001_SRF_2_LR.png"
    up = run("upscale.py", "model=falsr_c", f"model.weights={weights}", f"input={lr}", f"output={out}", tmp=tmp_path)
    assert up.returncode == 0, up.stderr[-3000:]
    from falsr.protocol.images import read_rgb

    h, w, _ = read_rgb(lr).shape
    assert read_rgb(out / "img_001_SRF_2_LR_x4.png").shape == (4 * h, 4 * w, 3)

    wrong = run(
        "evaluate.py",
        "model=falsr_c",
        f"model.weights={weights}",
        "data.scale=2",
        f"paths.data_dir={tiny_data}",
        "data.benchmarks=[Tiny]",
        f"hydra.run.dir={ev_dir}",
        tmp=tmp_path,
    )
    lines = wrong.stderr.strip().splitlines()
    assert (
        wrong.returncode == 2
        and len(lines) == 1
        and "is a x4 network, but the model is built at x2: set data.scale=4" in lines[0]
    ), wrong.stderr[-2000:]


def test_summary_at_x4_reports_the_720p_convention():
    proc = subprocess.run(
        [sys.executable, "-m", "falsr.summary", "model=falsr_b", "data.scale=4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["lr_size"] == [180, 320]
    assert result["mult_adds"] == genome_cost(parse_genome(FALSR_B), (180, 320), 4).mult_adds
    assert "d2s x4" in proc.stdout


def search_at(tiny_data: Path, sweep: Path, *extra: str) -> list[str]:
    return [
        "+search=nsga2",
        f"paths.data_dir={tiny_data}",
        f"data.train_dir={tiny_data}/train/T4",
        "data.holdout=0",
        "data.val_sets=[Tiny]",
        "trainer.max_steps=3",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        "scheduler.warmup_steps=1",
        "search.settings.population_size=2",
        "search.generations=1",
        "search.settings.constraints.max_mult_adds=null",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


@pytest.mark.slow
def test_a_tiny_search_at_x4(tiny_data, tmp_path):
    """`python search.py +search=nsga2 data.scale=4`: every candidate trains at x4, and its journaled mult-adds are the
    x4 network's at a 1280x720 output's LR (the selection's numbers), not the x2 ones."""
    from test_search_e2e import journal, run_search

    sweep = tmp_path / "sweep"
    proc = run_search(search_at(tiny_data, sweep, "data.scale=4"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok = [r for r in journal(sweep) if r["status"] == "ok"]
    assert len(ok) == 4
    for r in ok:
        assert r["mult_adds"] == genome_cost(r["genome"], (180, 320), 4).mult_adds != genome_cost(r["genome"]).mult_adds
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert metrics["scale"] == 4


def test_a_search_scale_other_than_the_datas_is_one_line(tiny_data, tmp_path):
    from test_search_e2e import run_search

    proc = run_search(search_at(tiny_data, tmp_path / "sweep", "search.settings.scale=3"), tmp_path, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "search.settings.scale=3 but data.scale=2" in lines[-1], proc.stderr[-2000:]


def test_the_budgets_lr_patch_at_x4_leaves_out_only_the_image_too_small(data_dir, caplog):
    """budget=cpu's 32x32 LR patch is 128 HR at x4: T91's t26.bmp (92 pixels high) cannot hold it and is left out
    with a one-line warning; the other 52 images train."""
    from falsr.training.data import PatchDataset, pair_store

    with caplog.at_level("WARNING"):
        ds = PatchDataset(pair_store(data_dir / "train" / "T91", scale=4), patch_size=128, scale=4)
    lr, hr = ds[(0, 7)]
    assert len(ds) == 52 and lr.shape == (1, 32, 32) and hr.shape == (1, 128, 128)
    assert (
        "1 of 53 training images are smaller than the HR patch data.patch_size=128 and are left out: t26.bmp"
        in caplog.text
    )


def test_latency_is_timed_at_the_networks_scale(tmp_path):
    """The latency table of a x4 search times the x4 upsampler on a 1280x720 output's LR, in a table of its own."""
    from falsr.latency import LatencySettings
    from falsr.latency.table import part

    x2, x4 = LatencySettings(cache_dir=str(tmp_path)), LatencySettings(scale=4, cache_dir=str(tmp_path))
    assert (x2.lr_size, x4.lr_size) == ((360, 640), (180, 320)) and x2.table_path() != x4.table_path()
    module, shapes = part("up/64", LatencySettings(scale=4, lr_size=8))
    assert module(*[torch.rand(s) for s in shapes]).shape == (1, 1, 32, 32)
    with pytest.raises(UserError, match="latency.scale=5"):
        LatencySettings(scale=5)
