"""MATLAB-compatible bicubic ``imresize`` (how the benchmark LR images were made) and PIL bicubic upscaling.

Neither PIL nor torch reproduces MATLAB: PIL's and torch's antialiased bicubic use other kernel
normalisation/rounding, torch without antialiasing is ~10 dB off, so the MATLAB algorithm is written here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import Tensor

BORDERS = ("replicate", "symmetric")


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@lru_cache(maxsize=64)
def contributions(
    in_length: int, out_length: int, scale: float, border: str = "replicate"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel tap weights and 0-based source indices along one axis, as MATLAB's ``contributions``.

    When shrinking, the kernel is stretched by 1/scale (antialiasing). ``border='replicate'`` clamps indices
    to the edge (older MATLAB; Set5/Set14/B100), ``'symmetric'`` mirrors them (newer MATLAB; Urban100).
    Returns ``(weights, indices)``, both of shape (out_length, taps); all-zero tap columns are dropped.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    kernel_width = 4.0
    if scale < 1:

        def kernel(x):
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]  # 1-based, like MATLAB
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left + np.arange(taps)[None, :]
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    indices = indices.astype(np.int64) - 1  # to 0-based
    if border == "replicate":
        indices = np.clip(indices, 0, in_length - 1)
    else:
        mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
        indices = mirror[np.mod(indices, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    weights.setflags(write=False)
    indices.setflags(write=False)
    return weights, indices


def _resize_dim(x: Tensor, dim: int, out_length: int, scale: float, border: str, quantize: bool) -> Tensor:
    """Resize float64 ``x`` along ``dim``: a weighted sum of a few gathered slices (one per tap, <= 18)."""
    weights, indices = contributions(x.shape[dim], out_length, scale, border)
    w_shape = [1] * x.ndim
    w_shape[dim] = out_length
    w = torch.tensor(weights.T, device=x.device)  # copies: the cached arrays stay read-only
    idx = torch.tensor(indices.T, device=x.device)
    out = x.index_select(dim, idx[0]).mul_(w[0].view(w_shape))
    for k in range(1, idx.shape[0]):  # accumulating tap by tap keeps memory at output size (fast)
        out.add_(x.index_select(dim, idx[k]).mul_(w[k].view(w_shape)))
    if quantize:
        # MATLAB converts to uint8 after each pass: round half up, saturate.
        out = torch.floor(out.add_(0.5)).clamp_(0, 255)
    return out


def _imresize_hw(x: Tensor, h_dim: int, w_dim: int, scale: float, border: str, quantize: bool) -> Tensor:
    out_h = math.ceil(x.shape[h_dim] * scale)
    out_w = math.ceil(x.shape[w_dim] * scale)
    # MATLAB resizes along the first dimension (height) first when both scales are equal.
    x = _resize_dim(x, h_dim, out_h, scale, border, quantize)
    return _resize_dim(x, w_dim, out_w, scale, border, quantize)


def imresize(img: np.ndarray | Tensor, scale: float, border: str = "replicate") -> np.ndarray | Tensor:
    """MATLAB ``imresize(img, scale, 'bicubic')``, antialiased when shrinking; output size ceil(scale * size).

    * numpy input: (H, W) or (H, W, C), channel-last; torch input: (..., H, W), channel-first.
    * ``uint8`` input is rounded (half up) and clipped after each of the two passes, as MATLAB does,
      and ``uint8`` is returned; other input is resized in float64 without rounding and returned as float
      (float dtypes are kept; numpy integer types other than uint8 come back as float64).
    * ``scale``: e.g. 0.5 for x2 downscaling (taps [-3, -9, 29, 111, 111, 29, -9, -3] / 256), 2 for x2 up.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"numpy image must be (H, W) or (H, W, C), got shape {img.shape}")
        quantize = img.dtype == np.uint8
        x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
        res = _imresize_hw(x, 0, 1, scale, border, quantize).numpy()
        return res.astype(np.uint8) if quantize else res.astype(np.result_type(img.dtype, np.float32))
    if not isinstance(img, Tensor):
        raise TypeError(f"imresize expects a numpy array or torch tensor, got {type(img).__name__}")
    if img.ndim < 2:
        raise ValueError(f"tensor must have at least 2 dims (..., H, W), got shape {tuple(img.shape)}")
    quantize = img.dtype == torch.uint8
    if not quantize and not img.is_floating_point():
        raise TypeError(f"imresize supports uint8 or floating tensors, got {img.dtype}")
    res = _imresize_hw(img.to(torch.float64), img.ndim - 2, img.ndim - 1, scale, border, quantize)
    return res.to(img.dtype)


def matlab_downscale(img: np.ndarray | Tensor, factor: int, border: str = "replicate") -> np.ndarray | Tensor:
    """Shrink by an integer ``factor`` as MATLAB ``imresize(img, 1/factor, 'bicubic')``; see :func:`imresize`."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    return imresize(img, 1.0 / int(factor), border)


def pil_bicubic_upscale(rgb_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an (H, W, 3) or (H, W) uint8 image by an integer factor with PIL's bicubic filter.

    This is what the release used for the chroma planes and for the bicubic baseline: the old
    ``scipy.misc.imresize(..., interp='bicubic')`` was a thin wrapper over PIL's ``Image.resize``.
    """
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected uint8 (H, W, 3) or (H, W), got {arr.dtype} {arr.shape}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = arr.shape[:2]
    img = Image.fromarray(arr).resize((w * int(scale), h * int(scale)), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8).copy()
