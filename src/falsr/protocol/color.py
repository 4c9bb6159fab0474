"""Colour conversions of the FALSR evaluation protocol.

Three conventions meet in the release and must not be mixed up:

* YPbPr (skimage ``rgb2ypbpr``) on RGB in [0, 1]: the network input Y and the chroma Pb, Pr;
* YCbCr Y (skimage ``rgb2ycbcr``, BT.601 studio range, Y in [16, 235]): what PSNR/SSIM are measured on;
* the JPEG (full-range) YCbCr -> RGB matrix that the released graphs apply to [Y, Pb, Pr] to output RGB.

Torch functions take float tensors with the channel axis at dim -3 ((C, H, W) or (N, C, H, W));
the ``*_np`` helpers take channel-last numpy arrays (H, W, 3) as skimage does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# BT.601 analogue YPbPr, rows = Y, Pb, Pr (skimage.color.colorconv.ypbpr_from_rgb).
YPBPR_FROM_RGB = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
# skimage inverts the forward matrix rather than using rounded textbook coefficients.
RGB_FROM_YPBPR = np.linalg.inv(YPBPR_FROM_RGB)

# BT.601 studio-range YCbCr for RGB in [0, 1] (skimage ycbcr_from_rgb); offsets 16, 128, 128 added after.
YCBCR_FROM_RGB = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
YCBCR_Y_OFFSET = 16.0

# Full-range (JPEG) YCbCr -> RGB, as in the released graphs' output layer; inputs on the 0..255 scale.
JPEG_RGB_FROM_YCBCR = np.array(
    [
        [1.0, 0.0, 1.402],
        [1.0, -0.34414, -0.71414],
        [1.0, 1.772, 0.0],
    ]
)
# Folds the "-128" chroma offset into a bias: M @ [Y, Cb-128, Cr-128] = M @ [Y, Cb, Cr] + bias.
JPEG_RGB_BIAS = -128.0 * np.array([1.402, -(0.34414 + 0.71414), 1.772])


def _mix(x: Tensor, matrix: np.ndarray) -> Tensor:
    """Apply a (K, 3) colour matrix over the channel axis (dim -3) of ``x``."""
    if x.shape[-3] != 3:
        raise ValueError(f"expected 3 channels at dim -3, got shape {tuple(x.shape)}")
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("kc,...chw->...khw", m, x)


def _bias(b: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(b, dtype=like.dtype, device=like.device).view(-1, 1, 1)


def rgb_to_ypbpr(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> [Y, Pb, Pr] with Y in [0, 1] and Pb, Pr in [-0.5, 0.5] (skimage ``rgb2ypbpr``).

    The network's input is the Y plane; the Pb, Pr planes of the bicubic-upscaled LR carry the chroma.
    """
    return _mix(rgb, YPBPR_FROM_RGB)


def ypbpr_to_rgb(ypbpr: Tensor) -> Tensor:
    """Exact inverse of :func:`rgb_to_ypbpr` (skimage ``ypbpr2rgb``); no clipping."""
    return _mix(ypbpr, RGB_FROM_YPBPR)


def rgb_to_ycbcr_y(rgb255: Tensor) -> Tensor:
    """Y of BT.601 studio YCbCr, in [16, 235], from RGB on the 0..255 scale; keeps the channel axis.

    Same as skimage ``rgb2ycbcr(uint8_rgb)[..., 0]``: 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
    This is the channel the protocol measures PSNR and SSIM on.
    """
    if rgb255.shape[-3] != 3:
        raise ValueError(f"expected 3 channels at dim -3, got shape {tuple(rgb255.shape)}")
    x = (rgb255 if rgb255.is_floating_point() else rgb255.double()) * (1.0 / 255.0)  # as skimage img_as_float
    m = torch.as_tensor(YCBCR_FROM_RGB[0], dtype=x.dtype, device=x.device)
    r, g, b = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
    # Fused multiply-adds in this order reproduce numpy's BLAS product (and so skimage) bit for bit in
    # float64 on all 2^24 colours on CPU; a plain sum flips the rounding of some of the 194 exact .5 ties
    # (tiny tensors, a few pixels, may still take torch's unfused scalar path).
    y = torch.addcmul(torch.addcmul(r * m[0], g, m[1]), b, m[2])
    return y + YCBCR_Y_OFFSET


def graph_ypbpr_to_rgb(ypbpr: Tensor) -> Tensor:
    """[Y, Pb, Pr] -> RGB in [0, 1] the way the released graphs produce their RGB output.

    The graphs treat 255*Y, 255*(Pb+0.5), 255*(Pr+0.5) as full-range JPEG YCbCr, convert with the
    JPEG matrix, clip to [0, 255] and divide by 255. The JPEG matrix is not the exact inverse of
    YPbPr (0.34414 vs 0.344136...), so this differs slightly from :func:`ypbpr_to_rgb`.
    """
    ycbcr = ypbpr * 255.0 + _bias(np.array([0.0, 127.5, 127.5]), ypbpr)
    rgb = _mix(ycbcr, JPEG_RGB_FROM_YCBCR) + _bias(JPEG_RGB_BIAS, ypbpr)
    return rgb.clamp(0.0, 255.0) / 255.0


def rgb_to_ypbpr_np(rgb01: np.ndarray) -> np.ndarray:
    """Channel-last numpy version of :func:`rgb_to_ypbpr` (float64)."""
    return np.asarray(rgb01, dtype=np.float64) @ YPBPR_FROM_RGB.T


def ypbpr_to_rgb_np(ypbpr: np.ndarray) -> np.ndarray:
    """Channel-last numpy version of :func:`ypbpr_to_rgb` (float64)."""
    return np.asarray(ypbpr, dtype=np.float64) @ RGB_FROM_YPBPR.T


def rgb_to_ycbcr_y_np(rgb255: np.ndarray) -> np.ndarray:
    """Channel-last numpy version of :func:`rgb_to_ycbcr_y`: (H, W, 3) on 0..255 -> (H, W) Y in [16, 235].

    Bit-identical to skimage ``rgb2ycbcr(rgb_uint8)[..., 0]``: same operations in the same order
    (scale by 1/255, product with the full transposed matrix, then +16), which matters because 194 of the
    2^24 colours have a Y exactly halfway between integers and the protocol rounds Y.
    """
    x = np.asarray(rgb255, dtype=np.float64) * (1.0 / 255.0)
    return (x @ YCBCR_FROM_RGB.T)[..., 0] + YCBCR_Y_OFFSET
