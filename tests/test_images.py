"""read_rgb / write_png: real files, grey replication, clear errors."""

import numpy as np
import pytest
from PIL import Image

from falsr.protocol.images import read_rgb, write_png


def test_read_rgb_shapes_and_grey_replication(data_dir):
    rgb = read_rgb(data_dir / "benchmarks" / "Set5" / "img_005_SRF_2_HR.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (344, 228, 3)
    grey_path = data_dir / "benchmarks" / "Set14" / "img_003_SRF_2_HR.png"
    grey = read_rgb(grey_path)
    assert grey.shape == (512, 512, 3)
    raw = np.asarray(Image.open(grey_path))
    assert raw.ndim == 2
    for c in range(3):
        np.testing.assert_array_equal(grey[..., c], raw)


def test_read_bmp(data_dir):
    bmp = sorted((data_dir / "train" / "T91").glob("*.bmp"))[0]
    rgb = read_rgb(bmp)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_write_then_read_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    write_png(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "x.png"), rgb)


def test_write_png_rejects_float(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 3), dtype=np.float32))


def test_missing_file_message_names_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError) as info:
        read_rgb(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_png_raises_value_error(tmp_path):
    rng = np.random.default_rng(1)
    good = tmp_path / "good.png"
    write_png(good, rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        read_rgb(bad)
    msg = str(info.value)
    assert str(bad) in msg and "\n" not in msg and "decode" in msg


def test_not_an_image_raises_value_error(tmp_path):
    bad = tmp_path / "text.png"
    bad.write_text("this is not a png")
    with pytest.raises(ValueError, match="text.png"):
        read_rgb(bad)


def test_sixteen_bit_refused(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(path)
    with pytest.raises(ValueError, match="mode"):
        read_rgb(path)
