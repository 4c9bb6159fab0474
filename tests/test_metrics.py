"""Protocol PSNR/SSIM on Y: against an independent numpy/scipy implementation, and the known bicubic figure."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from falsr.protocol.color import rgb_to_ycbcr_y_np
from falsr.protocol.images import read_rgb
from falsr.protocol.metrics import (
    ProtocolPSNR,
    ProtocolSSIM,
    protocol_y,
    psnr_per_image,
    psnr_ssim_y,
    ssim_per_image,
    to_uint8_truncate,
)
from falsr.protocol.resize import pil_bicubic_upscale

YCBCR_MATRIX = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])


# ---- independent reference, written from the protocol text (scipy 'mirror' == OpenCV reflect-101) ----
def ref_y(rgb_uint8, border=2, rounded=True):
    y = ((rgb_uint8.astype(np.float64) * (1 / 255.0)) @ YCBCR_MATRIX.T)[..., 0] + 16.0  # skimage rgb2ycbcr
    if border:
        y = y[border:-border, border:-border]
    return np.round(np.clip(y, 0, 255)) if rounded else y


def ref_psnr(a, b):
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def ref_ssim(a, b):
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def filt(img):
        return ndimage.convolve(img, win, mode="mirror")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(smap.mean())


def _t(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def set5_bicubic(data_dir):
    """(SR, HR) pairs: PIL bicubic x2 of each Set5 LR image, and its HR image."""
    out = []
    for hr_path in sorted((data_dir / "benchmarks" / "Set5").glob("*_HR.png")):
        hr = read_rgb(hr_path)
        lr = read_rgb(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
        out.append((pil_bicubic_upscale(lr, 2), hr))
    assert len(out) == 5
    return out


@pytest.fixture(scope="module")
def set5_scores(set5_bicubic):
    """Per-image (PSNR, SSIM) from the numpy entry point, computed once (float64 SSIM is not free)."""
    return [psnr_ssim_y(sr, hr) for sr, hr in set5_bicubic]


def test_matches_independent_reference_on_set5(set5_bicubic, set5_scores):
    for (sr, hr), (psnr, ssim) in zip(set5_bicubic, set5_scores):
        a, b = ref_y(sr), ref_y(hr)
        assert psnr == pytest.approx(ref_psnr(a, b), abs=1e-6)
        assert ssim == pytest.approx(ref_ssim(a, b), abs=1e-6)


def test_set5_bicubic_known_figure(set5_scores):
    psnr, ssim = np.array(set5_scores).mean(axis=0)
    print(f"Set5 bicubic x2 (protocol): PSNR {psnr:.4f} dB, SSIM {ssim:.5f}")
    assert psnr == pytest.approx(33.64, abs=0.01)  # figure given in the protocol notes
    assert ssim == pytest.approx(0.92918, abs=1e-4)  # measured here; equals the scipy reference above


def test_border_and_rounding_matter(set5_bicubic):
    sr, hr = set5_bicubic[2]  # smallest image (256 x 256)
    p2, s2 = psnr_ssim_y(sr, hr, border=2)
    p0, s0 = psnr_ssim_y(sr, hr, border=0)
    assert abs(p2 - p0) > 0.01 and abs(s2 - s0) > 1e-4
    assert p0 == pytest.approx(ref_psnr(ref_y(sr, border=0), ref_y(hr, border=0)), abs=1e-6)
    unrounded = ref_ssim(ref_y(sr, rounded=False), ref_y(hr, rounded=False))
    assert abs(unrounded - s2) > 1e-5  # the protocol's rounding of Y is not a no-op


def test_torch_path_and_metric_classes(set5_bicubic, set5_scores):
    """Batch size 1 over images of different sizes, then a batch of two: means of per-image scores."""
    psnr_m, ssim_m = ProtocolPSNR(), ProtocolSSIM()
    for (sr, hr), (psnr, _) in zip(set5_bicubic, set5_scores):
        ys, yh = protocol_y(_t(sr)), protocol_y(_t(hr))
        assert ys.shape == (1, 1, hr.shape[0] - 4, hr.shape[1] - 4) and ys.dtype == torch.float64
        assert float(psnr_per_image(ys, yh)[0]) == pytest.approx(psnr, abs=1e-9)
        psnr_m.update(ys, yh)
        ssim_m.update(ys, yh)
    n = len(set5_scores)
    mean_psnr, mean_ssim = np.array(set5_scores).mean(axis=0)
    assert float(psnr_m.compute()) == pytest.approx(mean_psnr, abs=1e-9)
    assert float(ssim_m.compute()) == pytest.approx(mean_ssim, abs=1e-9)

    sr, hr = set5_bicubic[2]
    crops = [(slice(0, 100), slice(20, 140)), (slice(-100, None), slice(-120, None))]
    per_image = [psnr_ssim_y(sr[c], hr[c]) for c in crops]
    ys = protocol_y(torch.cat([_t(sr[c]) for c in crops]))
    yh = protocol_y(torch.cat([_t(hr[c]) for c in crops]))
    np.testing.assert_allclose(psnr_per_image(ys, yh).numpy(), [p for p, _ in per_image], atol=1e-9)
    np.testing.assert_allclose(ssim_per_image(ys, yh).numpy(), [s for _, s in per_image], atol=1e-9)
    psnr_m.update(ys, yh)
    expected = (mean_psnr * n + per_image[0][0] + per_image[1][0]) / (n + 2)
    assert float(psnr_m.compute()) == pytest.approx(expected, abs=1e-9)
    psnr_m.reset()
    psnr_m.update(ys[:1], yh[:1])
    assert float(psnr_m.compute()) == pytest.approx(per_image[0][0], abs=1e-9)


def test_identical_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    psnr, ssim = psnr_ssim_y(img, img)
    assert math.isinf(psnr) and psnr > 0
    assert ssim == pytest.approx(1.0, abs=1e-12)


def test_float_network_output_path(set5_bicubic):
    sr, _ = set5_bicubic[2]
    rgb01 = _t(sr).to(torch.float32) / 255.0  # what a network would output for this image
    q = to_uint8_truncate(rgb01 + 0.2 / 255)  # +0.2 of a level is truncated away
    assert q.dtype == torch.uint8
    np.testing.assert_array_equal(q[0].permute(1, 2, 0).numpy(), sr)
    edge = to_uint8_truncate(torch.tensor([-0.1, 0.99999, 1.3]).view(1, 3, 1, 1))
    assert edge.flatten().tolist() == [0, 254, 255]
    np.testing.assert_array_equal(protocol_y(q).numpy(), protocol_y(_t(sr).float()).numpy())


def test_input_errors():
    y = torch.zeros(1, 1, 30, 30, dtype=torch.float64)
    with pytest.raises(ValueError, match="equal shape"):
        psnr_per_image(y, torch.zeros(1, 1, 30, 31))
    with pytest.raises(ValueError, match="larger than"):
        ssim_per_image(torch.zeros(1, 1, 10, 30), torch.zeros(1, 1, 10, 30))
    with pytest.raises(ValueError, match="uint8"):
        psnr_ssim_y(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)))


def test_grey_set14_image(data_dir):
    hr = read_rgb(data_dir / "benchmarks" / "Set14" / "img_003_SRF_2_HR.png")
    lr = read_rgb(data_dir / "benchmarks" / "Set14" / "img_003_SRF_2_LR.png")
    sr = pil_bicubic_upscale(lr, 2)[100:300, 100:300]  # a crop keeps the test fast
    hr = hr[100:300, 100:300]
    psnr, ssim = psnr_ssim_y(sr, hr)
    assert psnr == pytest.approx(ref_psnr(ref_y(sr), ref_y(hr)), abs=1e-6)
    assert ssim == pytest.approx(ref_ssim(ref_y(sr), ref_y(hr)), abs=1e-6)


def test_separable_ssim_equals_torchmetrics_2d_filtering(set5_bicubic):
    """The separable SSIM gives torchmetrics' 2-D-window numbers on Set5 and on synthetic images."""
    import torch

    from falsr.protocol.metrics import ssim_per_image, ssim_per_image_torchmetrics

    pairs = [
        (torch.from_numpy(rgb_to_ycbcr_y_np(sr))[None, None], torch.from_numpy(rgb_to_ycbcr_y_np(hr))[None, None])
        for sr, hr in set5_bicubic
    ]
    gen = torch.Generator().manual_seed(0)
    for h, w in ((11, 11), (37, 20), (130, 97)):
        a = torch.randint(0, 256, (2, 1, h, w), generator=gen).double()
        pairs.append((a, (a + 12 * torch.randn(a.shape, generator=gen)).clamp(0, 255).round()))
    for sr, hr in pairs:
        sr, hr = sr.clamp(0, 255).round(), hr.clamp(0, 255).round()
        assert torch.allclose(ssim_per_image(sr, hr), ssim_per_image_torchmetrics(sr, hr), rtol=0, atol=1e-12)


def test_fast_ssim_equals_torchmetrics_on_set14(data_dir):
    """The shifted-add SSIM against torchmetrics' 2-D filtering on every Set14 image (bicubic x2 vs HR)."""
    from falsr.protocol.metrics import ssim_per_image_torchmetrics

    hr_paths = sorted((data_dir / "benchmarks" / "Set14").glob("*_HR.png"))
    assert len(hr_paths) == 14
    for hr_path in hr_paths:
        hr = read_rgb(hr_path)
        sr = pil_bicubic_upscale(read_rgb(hr_path.with_name(hr_path.name.replace("_HR", "_LR"))), 2)
        ys, yh = protocol_y(_t(sr)), protocol_y(_t(hr))
        fast, reference = ssim_per_image(ys, yh), ssim_per_image_torchmetrics(ys, yh)
        assert torch.allclose(fast, reference, rtol=0, atol=1e-12), hr_path.name
        assert float(fast[0]) == pytest.approx(ref_ssim(ref_y(sr), ref_y(hr)), abs=1e-7), hr_path.name
