"""The evaluation protocol around a Y-channel network: LR RGB -> (Y input, chroma) -> SR RGB uint8.

Only composition: every conversion is the protocol's own function (falsr.color, falsr.resize,
falsr.metrics), so validation during training and evaluation give the same numbers by construction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from falsr.color import graph_ypbpr_to_rgb, rgb_to_ypbpr
from falsr.metrics import to_uint8_truncate
from falsr.resize import pil_bicubic_upscale

SCALE = 2


def network_input(lr_rgb: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 LR RGB -> (1, H, W) float32 Y of YPbPr in [0, 1] (the network's input)."""
    rgb01 = torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1).to(torch.float64) / 255.0
    return rgb_to_ypbpr(rgb01)[:1].to(torch.float32)


def chroma(lr_rgb: np.ndarray, scale: int = SCALE) -> Tensor:
    """(H, W, 3) uint8 LR RGB -> (2, sH, sW) float64 Pb, Pr of its PIL-bicubic upscale (the release's chroma)."""
    up = pil_bicubic_upscale(np.ascontiguousarray(lr_rgb), scale)
    rgb01 = torch.from_numpy(up).permute(2, 0, 1).to(torch.float64) / 255.0
    return rgb_to_ypbpr(rgb01)[1:]


def sr_rgb(y_sr: Tensor, pbpr: Tensor) -> Tensor:
    """Network Y (N, 1, sH, sW) + chroma (N, 2, sH, sW) -> (N, 3, sH, sW) uint8 RGB, as the released graphs output it.

    The graph's JPEG YCbCr -> RGB, then *255, clip, truncate to uint8 (protocol steps 3-4).
    """
    ypbpr = torch.cat([y_sr.to(torch.float64), pbpr.to(torch.float64)], dim=1)
    return to_uint8_truncate(graph_ypbpr_to_rgb(ypbpr))
