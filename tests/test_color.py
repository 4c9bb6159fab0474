"""Colour conversions: defining properties of each convention, on synthetic and real images."""

import numpy as np
import pytest
import torch

from falsr.protocol import color
from falsr.protocol.images import read_rgb


def _chw(rgb_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb_hwc)).permute(2, 0, 1).to(torch.float64)


def test_ypbpr_primaries_and_grey():
    rgb = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 1, 1], [0.4, 0.4, 0.4]], dtype=torch.float64)
    ypbpr = color.rgb_to_ypbpr(rgb.T[:, :, None])[:, :, 0].T  # 4 "pixels" as a 3x4x1 image
    torch.testing.assert_close(ypbpr[0], torch.tensor([0.299, -0.168736, 0.5], dtype=torch.float64))
    torch.testing.assert_close(ypbpr[1], torch.tensor([0.114, 0.5, -0.081312], dtype=torch.float64))
    torch.testing.assert_close(ypbpr[2], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(ypbpr[3], torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64))


def test_ypbpr_roundtrip_and_numpy_agree(data_dir):
    rgb = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_HR.png") / 255.0
    t = _chw(rgb)[None]
    ypbpr = color.rgb_to_ypbpr(t)
    assert ypbpr.shape == t.shape
    assert float(ypbpr[:, 1:].abs().max()) <= 0.5 + 1e-12
    torch.testing.assert_close(color.ypbpr_to_rgb(ypbpr), t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(color.rgb_to_ypbpr_np(rgb), ypbpr[0].permute(1, 2, 0).numpy(), atol=1e-12)
    np.testing.assert_allclose(color.ypbpr_to_rgb_np(color.rgb_to_ypbpr_np(rgb)), rgb, atol=1e-12)


def test_ycbcr_y_studio_range():
    grey = np.arange(256, dtype=np.uint8)[:, None, None].repeat(3, axis=2)  # (256, 1, 3)
    y = color.rgb_to_ycbcr_y_np(grey)[:, 0]
    np.testing.assert_allclose(y, 16 + 219 * np.arange(256) / 255.0, atol=1e-12)
    red = color.rgb_to_ycbcr_y_np(np.array([[[255, 0, 0]]], dtype=np.uint8))
    np.testing.assert_allclose(red, [[16 + 65.481]], atol=1e-12)


def test_ycbcr_y_torch_matches_numpy(data_dir):
    rgb = read_rgb(data_dir / "benchmarks" / "Set14" / "img_004_SRF_2_HR.png")
    y_np = color.rgb_to_ycbcr_y_np(rgb)
    t_uint8 = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    y_t = color.rgb_to_ycbcr_y(t_uint8)
    assert y_t.shape == (1, 1, *rgb.shape[:2]) and y_t.dtype == torch.float64
    np.testing.assert_allclose(y_t[0, 0].numpy(), y_np, rtol=0, atol=1e-11)
    y_f = color.rgb_to_ycbcr_y(t_uint8.to(torch.float32))
    np.testing.assert_allclose(y_f[0, 0].numpy(), y_np, rtol=0, atol=1e-4)


def test_graph_conversion_by_hand_value():
    # Y=0.5, Pb=0.1, Pr=-0.2 -> JPEG Y'=127.5, Cb=153, Cr=76.5
    ypbpr = torch.tensor([0.5, 0.1, -0.2], dtype=torch.float64).view(1, 3, 1, 1)
    rgb = color.graph_ypbpr_to_rgb(ypbpr).flatten() * 255
    expected = [127.5 + 1.402 * -51.5, 127.5 - 0.34414 * 25 - 0.71414 * -51.5, 127.5 + 1.772 * 25]
    torch.testing.assert_close(rgb, torch.tensor(expected, dtype=torch.float64))


def test_graph_conversion_clips_and_nearly_inverts(data_dir):
    rgb = _chw(read_rgb(data_dir / "benchmarks" / "Set5" / "img_003_SRF_2_HR.png") / 255.0)
    back = color.graph_ypbpr_to_rgb(color.rgb_to_ypbpr(rgb))
    # JPEG coefficients are rounded versions of the exact inverse: under one 8-bit level apart
    assert float((back - rgb).abs().max()) < 1.0 / 255
    extreme = torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64).view(3, 1, 1)  # R and B far above 255
    out = color.graph_ypbpr_to_rgb(extreme)
    assert float(out.max()) == 1.0 and float(out.min()) >= 0.0


def test_wrong_channel_count_rejected():
    with pytest.raises(ValueError, match="3 channels"):
        color.rgb_to_ypbpr(torch.zeros(1, 1, 4, 4))


def test_ycbcr_y_torch_bit_exact_on_rounding_ties():
    # the 194 colours whose Y is exactly halfway between integers: rounding Y (as the protocol does)
    # depends on the last bit, so torch and the skimage-exact numpy path must agree bit for bit
    v = np.arange(256, dtype=np.int32)
    scaled = 65481 * v[:, None, None] + 128553 * v[None, :, None] + 24966 * v[None, None, :]  # 255000 * (Y - 16)
    colours = np.argwhere(scaled % 255000 == 127500).astype(np.uint8)
    assert len(colours) == 194
    img = np.tile(colours[None], (4, 3, 1))  # a realistic-size image made of tie colours
    y_np = color.rgb_to_ycbcr_y_np(img)
    np.testing.assert_allclose(y_np % 1.0, 0.5, atol=1e-12)
    y_t = color.rgb_to_ycbcr_y(torch.from_numpy(img).permute(2, 0, 1)[None])[0, 0].numpy()
    np.testing.assert_array_equal(y_t, y_np)
