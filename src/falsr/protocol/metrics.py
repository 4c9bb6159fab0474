"""PSNR and SSIM on Y exactly as the FALSR release computed Table I (see the protocol notes).

Per image: RGB uint8 -> Y of BT.601 YCbCr (16..235) -> crop ``border`` pixels per side -> clip to [0, 255]
and round -> PSNR (data range 255) and SSIM (11x11 Gaussian, sigma 1.5, reflect-101 filtering over the
whole cropped image, then a 5-pixel margin cut before the mean). A dataset score is the mean of the
per-image scores.

Two details depend on the scale and on which published protocol a row follows (``protocol_border``, ``PROTOCOLS``):

* border crop: ``scale`` pixels per side (FALSR's x2 protocol crops 2; the published x3/x4 rows crop 3 and 4).
* single-channel HR images (Set14's bridge): ``falsr`` (the FALSR release, Table I) scores them like any image,
  as Y of the grey level replicated to RGB (Y = 16 + 219/255 grey, a compressed range); ``matlab`` (the MATLAB
  scripts behind the published bicubic rows, which call rgb2ycbcr only on 3-channel images) scores their grey
  level itself. On Set14 this moves every model's mean by about -0.09 dB (bridge alone: -1.3 dB).

In a Lightning validation step (batch size 1 is fine, images may differ in size)::

    sr_y = protocol_y(to_uint8_truncate(model_rgb01), border=scale)
    hr_y = protocol_y(hr_rgb_uint8, border=scale)
    self.val_psnr.update(sr_y, hr_y)          # val_psnr = ProtocolPSNR(), val_ssim = ProtocolSSIM()
    self.log("val/psnr", self.val_psnr)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure

from falsr.protocol.color import YPBPR_FROM_RGB, rgb_to_ycbcr_y, rgb_to_ycbcr_y_np

DATA_RANGE = 255.0
# Scoring of single-channel HR images: the FALSR release's (Table I) or the published MATLAB scripts' (see above).
PROTOCOLS = ("falsr", "matlab")
SSIM_SIGMA = 1.5
SSIM_MARGIN = 5  # (11 - 1) // 2: the 'valid' cut after filtering


def to_uint8_truncate(rgb01: Tensor) -> Tensor:
    """Network RGB output in [0, 1] -> uint8 levels as the release did: ``x * 255``, clip, then truncate."""
    return torch.floor((rgb01 * 255.0).clamp(0.0, 255.0)).to(torch.uint8)


def protocol_border(scale: int) -> int:
    """Pixels cropped per side before PSNR/SSIM at `scale`: `scale` itself.

    x2: 2, FALSR's protocol as it is (Table I). x3/x4: 3 and 4, the convention of the published MATLAB rows
    (SRCNN/VDSR's scripts crop `scale` pixels), measured on the bicubic baseline (tests/test_bicubic.py): with a
    crop of 2 instead, Set14 bicubic comes out 0.03 dB (x3) and 0.04 dB (x4) further from the published rows
    (27.50 vs 27.55, 25.95 vs 26.00), Set5 within 0.01 dB either way.
    """
    return int(scale)


def _crop_round(y: Tensor, border: int) -> Tensor:
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border:
        y = y[..., border:-border, border:-border]
    return y.clamp(0.0, 255.0).round()


def protocol_y(rgb255: Tensor, border: int = 2) -> Tensor:
    """(N, 3, H, W) RGB on the 0..255 scale (uint8 or integer-valued float) -> (N, 1, H-2b, W-2b) float64 Y.

    Y is BT.601 YCbCr luma in [16, 235]; after cropping it is clipped to [0, 255] and rounded, as the
    protocol does for both PSNR and SSIM.
    """
    return _crop_round(rgb_to_ycbcr_y(rgb255.to(torch.float64)), border)


def _check_y_pair(sr_y: Tensor, hr_y: Tensor) -> None:
    if sr_y.shape != hr_y.shape or sr_y.ndim != 4 or sr_y.shape[1] != 1:
        raise ValueError(
            f"expected two (N, 1, H, W) tensors of equal shape, got {tuple(sr_y.shape)} and {tuple(hr_y.shape)}"
        )


def psnr_per_image(sr_y: Tensor, hr_y: Tensor) -> Tensor:
    """Per-image PSNR in dB of (N, 1, H, W) Y tensors on 0..255; returns shape (N,), float64.

    Written by hand: torchmetrics evaluates log(data_range) and log(10) as float32 scalars, which costs
    about 1.4e-6 dB at 35 dB; the formula itself is the same.
    """
    _check_y_pair(sr_y, hr_y)
    diff = sr_y.to(torch.float64) - hr_y.to(torch.float64)
    mse = diff.square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def _gaussian_1d(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 11-tap Gaussian (sigma 1.5) of torchmetrics' SSIM, whose outer product is its 2-D window."""
    size = int(3.5 * SSIM_SIGMA + 0.5) * 2 + 1
    x = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=dtype, device=device)
    g = torch.exp(-((x / SSIM_SIGMA) ** 2) / 2)
    return g / g.sum()


def _filter_valid(x: Tensor, g: Tensor, dim: int) -> Tensor:
    """'Valid' filtering of x along `dim` with a symmetric 1-D kernel g, as shifted float64 adds.

    6x faster than float64 conv2d on CPU (which made SSIM cost a third of FALSR-B's network time on
    Set5, bench/evaluate_speed.py); the same sums up to float64 rounding order.
    """
    n = g.numel()
    r, length = n // 2, x.shape[dim] - (n - 1)
    w = g.tolist()
    out = x.narrow(dim, r, length) * w[r]
    pair = torch.empty_like(out)
    for k in range(r):  # g[k] == g[n-1-k]: add the two mirrored taps first, then one multiply-add
        torch.add(x.narrow(dim, k, length), x.narrow(dim, n - 1 - k, length), out=pair)
        out.add_(pair, alpha=w[k])
    return out


def ssim_per_image(sr_y: Tensor, hr_y: Tensor) -> Tensor:
    """Per-image SSIM of (N, 1, H, W) Y tensors on 0..255; returns shape (N,), float64.

    The protocol's SSIM (as torchmetrics computes it: reflect-101 padding, 11x11 Gaussian window of
    sigma 1.5, k1 0.01, k2 0.03, variances clamped at 0), then the 5-pixel margin cut before the mean.
    Written by hand because torchmetrics filters with the full 2-D window: the window is the outer
    product of one 1-D Gaussian, so two 1-D passes give the same sums (to float64 rounding, tested
    against torchmetrics and a scipy reference) in about a fifth of the arithmetic. The passes are
    shifted adds (`_filter_valid`), not conv2d: float64 conv2d takes a slow path on CPU.
    Images must be larger than 10 pixels per side after the border crop.
    """
    _check_y_pair(sr_y, hr_y)
    if min(sr_y.shape[-2:]) <= 2 * SSIM_MARGIN:
        raise ValueError(f"SSIM needs images larger than {2 * SSIM_MARGIN} px per side, got {tuple(sr_y.shape[-2:])}")
    x, y = sr_y.to(torch.float64), hr_y.to(torch.float64)
    g = _gaussian_1d(x.dtype, x.device)
    m = SSIM_MARGIN
    stack = torch.nn.functional.pad(torch.cat((x, y, x * x, y * y, x * y)), (m, m, m, m), mode="reflect")
    mu_x, mu_y, xx, yy, xy = _filter_valid(_filter_valid(stack, g, 2), g, 3).split(x.shape[0])
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    mu_xx, mu_yy, mu_xy = mu_x.pow(2), mu_y.pow(2), mu_x * mu_y
    var_x, var_y = torch.clamp(xx - mu_xx, min=0.0), torch.clamp(yy - mu_yy, min=0.0)
    ssim_map = ((2 * mu_xy + c1) * (2 * (xy - mu_xy) + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return ssim_map[..., m:-m, m:-m].mean(dim=(1, 2, 3))


def ssim_per_image_torchmetrics(sr_y: Tensor, hr_y: Tensor) -> Tensor:
    """The same SSIM through torchmetrics' 2-D filtering: the reference `ssim_per_image` is tested against."""
    _, ssim_map = structural_similarity_index_measure(
        sr_y.to(torch.float64),
        hr_y.to(torch.float64),
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        data_range=DATA_RANGE,
        k1=0.01,
        k2=0.03,
        return_full_image=True,
    )
    m = SSIM_MARGIN
    return ssim_map[..., m:-m, m:-m].mean(dim=(1, 2, 3))


def psnr_ssim_y(sr_rgb: np.ndarray, hr_rgb: np.ndarray, border: int = 2, grey: bool = False) -> tuple[float, float]:
    """Protocol PSNR (dB) and SSIM of one SR image against its HR image, both (H, W, 3) uint8 RGB.

    Y is computed with the skimage-exact numpy conversion, so rounding ties match skimage bit for bit.
    ``grey=True`` (a single-channel HR file under protocol ``matlab``) scores the grey level instead: the
    full-range luma 0.299 R + 0.587 G + 0.114 B, which is the grey level itself for R = G = B (and the
    network's Y for an upscale through the released graphs' colour conversion).
    """
    sr, hr = np.asarray(sr_rgb), np.asarray(hr_rgb)
    if sr.shape != hr.shape or sr.ndim != 3 or sr.shape[2] != 3:
        raise ValueError(f"expected two (H, W, 3) RGB images of equal shape, got {sr.shape} and {hr.shape}")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {sr.dtype} and {hr.dtype}")
    to_y = _grey_level if grey else rgb_to_ycbcr_y_np
    ys = [_crop_round(torch.from_numpy(to_y(img))[None, None], border) for img in (sr, hr)]
    return float(psnr_per_image(*ys)[0]), float(ssim_per_image(*ys)[0])


def _grey_level(rgb255: np.ndarray) -> np.ndarray:
    """(H, W, 3) on 0..255 -> (H, W) full-range luma (YPbPr's Y on the 0..255 scale): a grey image's own level."""
    return np.asarray(rgb255, dtype=np.float64) @ YPBPR_FROM_RGB[0]


class _PerImageMean(Metric):
    """Mean over images of a per-image score; images of any size, any batch size (e.g. 1 on Set5)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def _per_image(sr_y: Tensor, hr_y: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, sr_y: Tensor, hr_y: Tensor) -> None:
        """Add a batch of (N, 1, H, W) Y tensors on 0..255 (already cropped and rounded, see protocol_y)."""
        scores = self._per_image(sr_y, hr_y)
        self.total += scores.sum().to(self.total)
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total / self.count


class ProtocolPSNR(_PerImageMean):
    """Mean per-image protocol PSNR (dB) on Y; feed ``protocol_y`` outputs."""

    plot_lower_bound = 0.0
    _per_image = staticmethod(psnr_per_image)


class ProtocolSSIM(_PerImageMean):
    """Mean per-image protocol SSIM on Y; feed ``protocol_y`` outputs."""

    plot_lower_bound = 0.0
    plot_upper_bound = 1.0
    _per_image = staticmethod(ssim_per_image)
