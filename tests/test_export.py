"""ONNX and TorchScript export: the exported files compute what the PyTorch network computes, at any size."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from falsr.errors import UserError
from falsr.protocol.images import read_rgb
from falsr.protocol.pipeline import network_input, predict_y, upscale_rgb
from falsr.protocol.upscale import load_model
from falsr.space.network import build_network
from falsr.weights.export import OnnxNet, export
from falsr.weights.model import build_model

pytest.importorskip("onnxruntime", reason="pip install onnxruntime onnx (the dev and export extras have them)")

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
FALSR_B = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"
SMALL = "conv_f16_k3_b2_isskip.invbottleneck_e2_f16_k3_b1_noskip-11_1"  # two cells, a concat, both ops


def set5_y(data_dir):
    """Network inputs (1, 1, H, W) of the Set5 LR images: five different sizes."""
    lrs = sorted((data_dir / "benchmarks" / "Set5").glob("*_LR.png"))
    assert len(lrs) == 5
    return [network_input(read_rgb(p))[None] for p in lrs]


def max_diffs(net, tmp_path, inputs) -> dict[str, float]:
    """Largest |exported - PyTorch| on Y over the inputs, for each format."""
    onnx_net = OnnxNet(export(net, "onnx", tmp_path / "net.onnx"))
    with pytest.warns(DeprecationWarning):  # torch.jit is deprecated in favour of torch.export, still supported
        script = torch.jit.load(str(export(net, "torchscript", tmp_path / "net.pt")))
    diffs = {"onnx": 0.0, "torchscript": 0.0}
    with torch.inference_mode():
        for y in inputs:
            ref = net(y)
            assert ref.abs().max() > 0.1  # a network that outputs ~0 would pass any tolerance
            diffs["onnx"] = max(diffs["onnx"], float((onnx_net(y) - ref).abs().max()))
            diffs["torchscript"] = max(diffs["torchscript"], float((script(y) - ref).abs().max()))
    return diffs


def test_random_genome_exports_match_pytorch_on_set5(data_dir, tmp_path):
    """Always runs: a small random-init genome network (PyTorch default init, so outputs are not ~0)."""
    torch.manual_seed(0)
    net = build_network(SMALL, init_std=None).eval()
    inputs = set5_y(data_dir)
    diffs = max_diffs(net, tmp_path, inputs + [inputs[0][..., 3:40, 5:58]])  # and an odd size
    print(f"random {SMALL}: max |diff| on Set5 Y {diffs}")
    assert max(diffs.values()) <= 1e-4, diffs


def test_released_falsr_b_exports_match_pytorch_on_set5(data_dir, pretrained_dir, tmp_path):
    net = build_model(FALSR_B, weights=pretrained_dir / "FALSR-B.pb", name="FALSR-B").eval()
    diffs = max_diffs(net, tmp_path, set5_y(data_dir))
    print(f"FALSR-B: max |diff| on Set5 Y {diffs}")
    assert max(diffs.values()) <= 1e-4, diffs
    onnx_net = OnnxNet(tmp_path / "net.onnx")
    assert onnx_net.name == "FALSR-B" and onnx_net.genome == str(net.genome)
    assert onnx_net.receptive_radius() == net.receptive_radius()
    lr = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_LR.png")[:70, :90]
    y = network_input(lr)[None]  # tiles through the ONNX file: the metadata's radius makes them seamless
    torch.testing.assert_close(predict_y(onnx_net, y, tile=32), predict_y(net, y), rtol=0, atol=1e-4)


def run_cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_upscale_with_onnx_equals_pb(data_dir, pretrained_dir, tmp_path):
    """export.py -> upscale.py onnx=, and the Hydra-free deployment path: the .pb's image to 1 uint8 level."""
    pb = pretrained_dir / "FALSR-B.pb"
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(data_dir / "benchmarks" / "Set5" / "img_005_SRF_2_LR.png", src / "bird.png")
    onnx_file = tmp_path / "falsr_b.onnx"
    proc = run_cli(REPO / "export.py", "model=falsr_b", f"model.weights={pb}", "format=onnx", f"output={onnx_file}")
    assert proc.returncode == 0 and onnx_file.is_file(), proc.stderr
    proc = run_cli(REPO / "upscale.py", f"onnx={onnx_file}", f"input={src}", f"output={tmp_path / 'cli'}", "tile=64")
    assert proc.returncode == 0, proc.stderr
    deploy = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from falsr.weights.export import OnnxNet
        from falsr.protocol.upscale import upscale_files
        upscale_files(OnnxNet({str(onnx_file)!r}), [Path({str(src / "bird.png")!r})],
                      Path({str(tmp_path / "deploy")!r}))
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('hydra', 'pytorch_lightning', 'lightning'))
        assert not loaded, loaded
    """)
    proc = run_cli("-c", deploy)
    assert proc.returncode == 0, proc.stderr
    reference = upscale_rgb(build_model(FALSR_B, weights=pb).eval(), read_rgb(src / "bird.png"))
    for folder in ("cli", "deploy"):
        out = read_rgb(tmp_path / folder / "bird_x2.png")
        assert out.shape == reference.shape
        assert np.abs(out.astype(int) - reference).max() <= 1, folder


def test_bad_input_one_line_errors(data_dir, tmp_path):
    image = data_dir / "benchmarks" / "Set5" / "img_005_SRF_2_LR.png"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match="unknown format"):
        export(build_network(SMALL), "tflite", tmp_path / "x")
    with pytest.raises(UserError, match="cannot load ONNX file"):
        OnnxNet(bad)
    for onnx, precision, fragment in [(bad, "bf16", "applies to PyTorch models"), (None, "fp16", "unknown precision")]:
        with pytest.raises(UserError, match=fragment):
            load_model(OmegaConf.create({"onnx": str(onnx) if onnx else None, "precision": precision}))
    cases = [  # the entry scripts turn them into one line
        (["export.py", "format=tflite"], "unknown format 'tflite'"),
        (["upscale.py", f"onnx={tmp_path / 'missing.onnx'}", f"input={image}"], "ONNX file not found"),
    ]
    for args, fragment in cases:
        proc = run_cli(REPO / args[0], *args[1:])
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        assert proc.returncode == 2 and last.startswith("error: ") and fragment in last, (args, proc.stderr)
