"""Reading and writing 8-bit RGB images the way the evaluation protocol expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Modes that PIL converts to RGB without changing the 8-bit sample values
# (palette and alpha images); 16-bit or float images would be silently clipped, so they are refused.
_CONVERTIBLE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB ``uint8`` array of shape (H, W, 3).

    Greyscale images get their channel replicated to R, G, B (one Set14 image is grey),
    as the release's reader did. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for a file that cannot be decoded; both messages name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            if img.mode not in _CONVERTIBLE_MODES:
                raise ValueError(f"{path}: unsupported image mode {img.mode!r} (expected 8-bit RGB or grey)")
            img.load()  # decode now, so a truncated or corrupt file fails here, inside the try
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def write_png(path: str | Path, rgb_uint8: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) ``uint8`` array as a lossless PNG file."""
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: write_png expects uint8 values, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"{path}: write_png expects shape (H, W, 3) or (H, W), got {arr.shape}")
    Image.fromarray(arr).save(Path(path), format="PNG")
