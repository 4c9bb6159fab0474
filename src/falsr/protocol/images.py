"""Reading and writing 8-bit RGB images the way the evaluation protocol expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from falsr.errors import UserError

# Image files the project reads (training folders, benchmark folders, upscale inputs).
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm")

# Modes that PIL converts to RGB without changing the 8-bit sample values
# (palette and alpha images); 16-bit or float images would be silently clipped, so they are refused.
_CONVERTIBLE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder (by suffix, see IMAGE_SUFFIXES), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


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
                raise UserError(f"{path}: unsupported image mode {img.mode!r} (expected 8-bit RGB or grey)")
            img.load()  # decode now, so a truncated or corrupt file fails here, inside the try
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, UnidentifiedImageError) as exc:
        raise UserError(f"{path}: cannot decode image ({exc}); replace or remove the file") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


# Modes MATLAB's imread returns as a 2-D (one-channel) array: the published scripts score them as they are.
_SINGLE_CHANNEL_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def single_channel(path: str | Path) -> bool:
    """Whether an image file is greyscale with one channel (Set14's bridge), not RGB; reads the header only."""
    with Image.open(Path(path)) as img:
        return img.mode in _SINGLE_CHANNEL_MODES


def write_png(path: str | Path, rgb_uint8: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) ``uint8`` array as a lossless PNG file."""
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: write_png expects uint8 values, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"{path}: write_png expects shape (H, W, 3) or (H, W), got {arr.shape}")
    Image.fromarray(arr).save(Path(path), format="PNG")


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of `scale` (HR and LR then align exactly)."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]


def read_pair(hr_path: str | Path, lr_path: str | Path | None, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """An (HR, LR) uint8 pair: LR read from its file, or the MATLAB-bicubic downscale of HR when None.

    HR is cropped to a multiple of `scale` first; a read LR must then be exactly HR / scale.
    """
    from falsr.protocol.resize import matlab_downscale  # resize imports torch; keep images.py light

    hr = modcrop(read_rgb(hr_path), scale)
    if lr_path is None:
        return hr, matlab_downscale(hr, scale)
    lr = read_rgb(lr_path)
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise UserError(
            f"{Path(hr_path).name} is {hr.shape[1]}x{hr.shape[0]} but {Path(lr_path).name} is "
            f"{lr.shape[1]}x{lr.shape[0]}: HR must be exactly x{scale} the LR size"
        )
    return hr, lr
