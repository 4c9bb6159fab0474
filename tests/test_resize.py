"""MATLAB-compatible imresize: bit-exact against the shared LR files, plus kernel properties."""

import numpy as np
import pytest
import torch

from falsr.protocol.images import read_rgb
from falsr.protocol.resize import contributions, imresize, matlab_downscale, pil_bicubic_upscale


def _pairs(data_dir, name):
    hrs = sorted((data_dir / "benchmarks" / name).glob("*_HR.png"))
    assert hrs, f"no HR images in {name}"
    return [(hr, hr.with_name(hr.name.replace("_HR", "_LR"))) for hr in hrs]


@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_downscale_reproduces_shared_lr_bit_exact(data_dir, name):
    for hr_path, lr_path in _pairs(data_dir, name):
        hr, lr = read_rgb(hr_path), read_rgb(lr_path)
        h, w = (hr.shape[0] // 2) * 2, (hr.shape[1] // 2) * 2  # all shared HR sizes are even already
        assert (h // 2, w // 2) == lr.shape[:2]
        out = matlab_downscale(hr[:h, :w], 2)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, lr, err_msg=str(hr_path))


def test_x2_taps():
    weights, indices = contributions(20, 10, 0.5)
    np.testing.assert_array_equal(weights[4] * 256, [-3, -9, 29, 111, 111, 29, -9, -3])
    np.testing.assert_array_equal(indices[4], np.arange(5, 13))
    up, _ = contributions(10, 20, 2.0)
    np.testing.assert_array_equal(up[4] * 128, [-3, 29, 111, -9])


def test_borders_differ_only_on_outer_three_lr_pixels(data_dir):
    hr_path, lr_path = _pairs(data_dir, "Set5")[0]
    hr, lr = read_rgb(hr_path), read_rgb(lr_path)
    sym = imresize(hr, 0.5, border="symmetric")
    assert (sym != lr).any()
    np.testing.assert_array_equal(sym[3:-3, 3:-3], lr[3:-3, 3:-3])
    with pytest.raises(ValueError, match="border"):
        imresize(hr, 0.5, border="wrap")


def test_per_pass_rounding_and_row_order_matter(data_dir):
    # the exact match above would not happen with one rounding at the end
    hr_path, lr_path = _pairs(data_dir, "Set5")[1]
    hr, lr = read_rgb(hr_path), read_rgb(lr_path)
    once = np.floor(imresize(hr.astype(np.float64), 0.5) + 0.5).clip(0, 255).astype(np.uint8)
    assert (once != lr).mean() > 0.05


def test_torch_matches_numpy(data_dir):
    hr = read_rgb(_pairs(data_dir, "Set5")[2][0])
    expected = imresize(hr, 0.5)
    batch = torch.from_numpy(hr).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    out = imresize(batch, 0.5)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, *expected.shape[:2])
    np.testing.assert_array_equal(out[1].permute(1, 2, 0).numpy(), expected)
    grey = imresize(hr[..., 0], 0.5)
    np.testing.assert_array_equal(grey, expected[..., 0])
    f = imresize(batch.to(torch.float32) / 255, 0.5)
    assert f.dtype == torch.float32
    f_np = imresize(hr.astype(np.float64) / 255, 0.5)
    assert f_np.dtype == np.float64
    np.testing.assert_allclose(f[0].permute(1, 2, 0).numpy(), f_np, atol=1e-6)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0, 4.0])
def test_linear_ramp_reproduced_in_interior(scale):
    # the cubic kernel (a=-0.5) and its stretched antialiasing version reproduce linear functions
    h, w = 48, 60
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    img = 3.0 * yy - 2.0 * xx + 7.0
    out = imresize(img, scale)
    assert out.shape == (int(np.ceil(h * scale)), int(np.ceil(w * scale)))
    # output pixel i (0-based) is centred at input coordinate (i + 0.5) / scale - 0.5
    cy = (np.arange(out.shape[0]) + 0.5) / scale - 0.5
    cx = (np.arange(out.shape[1]) + 0.5) / scale - 0.5
    expected = 3.0 * cy[:, None] - 2.0 * cx[None, :] + 7.0
    m = int(np.ceil(3 * max(scale, 1 / scale)))
    np.testing.assert_allclose(out[m:-m, m:-m], expected[m:-m, m:-m], atol=1e-9)


def test_matlab_upscale_close_to_pil_bicubic(data_dir):
    # two independent implementations of the same Keys kernel; PIL rounds in fixed point
    lr = read_rgb(_pairs(data_dir, "Set5")[0][1])
    pil = pil_bicubic_upscale(lr, 2)
    assert pil.shape == (lr.shape[0] * 2, lr.shape[1] * 2, 3) and pil.dtype == np.uint8
    diff = np.abs(pil.astype(int) - imresize(lr, 2.0).astype(int))
    assert diff[4:-4, 4:-4].max() <= 2
    assert (diff != 0).mean() < 0.3
    with pytest.raises(ValueError, match="uint8"):
        pil_bicubic_upscale(lr.astype(np.float32), 2)
