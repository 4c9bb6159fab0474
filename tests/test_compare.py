"""compare.py: the Fig.-7-like PNG has the expected layout, and its captions carry the crops' protocol PSNR."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from falsr.errors import UserError
from falsr.protocol.benchmarks import load_benchmark
from falsr.protocol.compare import CAPTION, GAP, compare_image, worst_crop
from falsr.protocol.metrics import protocol_y, psnr_per_image
from falsr.protocol.pipeline import upscale_rgb
from falsr.protocol.resize import pil_bicubic_upscale
from falsr.space.network import build_network

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SMALL = "conv_f16_k3_b2_isskip.invbottleneck_e2_f16_k3_b1_noskip-11_1"


def protocol_crop_psnr(sr, hr, top, left, size):
    """Written out from falsr.protocol.metrics' steps: Y of each crop, clipped and rounded, then PSNR."""
    window = (slice(top, top + size), slice(left, left + size))
    to_t = [torch.from_numpy(np.ascontiguousarray(img[window])).permute(2, 0, 1)[None] for img in (sr, hr)]
    return float(psnr_per_image(*(protocol_y(t, border=0) for t in to_t))[0])


def test_compare_png_layout_and_psnr_captions(data_dir, tmp_path):
    pair = load_benchmark(data_dir, "Set5")[2]  # img_003: 256 x 256 HR
    torch.manual_seed(0)
    net = build_network(SMALL, init_std=None, name="small").eval()
    size, zoom = 64, 2
    fig = compare_image(pair, {"small": net}, tmp_path / "cmp.png", size=size, zoom=zoom)
    image = Image.open(fig.path)
    panel = size * zoom
    overview = round(pair.hr.shape[1] * panel / pair.hr.shape[0])
    assert image.size == (GAP + overview + 3 * (GAP + panel) + GAP, GAP + panel + CAPTION)  # HR, bicubic, small
    top, left, crop = fig.crop
    assert crop == size and (top, left) == worst_crop(pil_bicubic_upscale(pair.lr, 2), pair.hr, size)
    # The HR crop is pasted unchanged (nearest-neighbour zoom): the PNG shows the real pixels.
    shown = np.asarray(image)[GAP : GAP + panel, GAP + overview + GAP : GAP + overview + GAP + panel]
    np.testing.assert_array_equal(shown[::zoom, ::zoom], pair.hr[top : top + size, left : left + size])
    expected = {"Bicubic": pil_bicubic_upscale(pair.lr, 2), "small": upscale_rgb(net, pair.lr)}
    assert [p.label for p in fig.panels] == ["HR", "Bicubic", "small"]
    for p in fig.panels[1:]:
        psnr = protocol_crop_psnr(expected[p.label], pair.hr, top, left, size)
        assert p.psnr == pytest.approx(psnr, abs=1e-9)
        assert p.caption == f"{p.label} {psnr:.2f} dB"
    assert fig.panels[1].psnr > fig.panels[2].psnr  # an untrained network loses to bicubic
    with pytest.raises(UserError, match="leaves the"):
        compare_image(pair, {}, tmp_path / "x.png", size=size, at=(250, 0))


def test_compare_cli(data_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "compare.py"),
            f"models=[{SMALL}]",
            "benchmark=Set5",
            "images=[img_003]",
            "crop=48",
            "at=[10,20]",
            f"output={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**__import__("os").environ, "FALSR_DATA_DIR": str(data_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "Set5_img_003.png").is_file()
    assert "Bicubic" in proc.stdout and "crop 48px at (10, 20)" in proc.stdout
    proc = subprocess.run(
        [sys.executable, str(REPO / "compare.py"), "models=[nonsense]", "benchmark=Set5"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**__import__("os").environ, "FALSR_DATA_DIR": str(data_dir)},
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: unknown model 'nonsense'")
