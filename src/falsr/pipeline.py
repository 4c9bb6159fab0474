"""RGB in, RGB out: the released FALSR pipeline around a Y-channel network.

The network sees Y of YPbPr of the LR image; chroma comes from a PIL-bicubic x2 upscale of the LR
RGB; the output is converted back with the graphs' own YCbCr->RGB, scaled by 255, clipped and
truncated to uint8. `evaluate.py`, `upscale.py` and validation during training all use this, so
their numbers agree by construction. Large images go through the network in overlapping tiles.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from falsr.color import graph_ypbpr_to_rgb, rgb_to_ypbpr
from falsr.metrics import to_uint8_truncate
from falsr.network import SCALE, FALSRNet
from falsr.resize import pil_bicubic_upscale


def _tiles(length: int, tile: int) -> list[int]:
    return list(range(0, max(length - tile, 0) + 1, tile)) + ([length - tile] if length > tile and
                                                                (length - tile) % tile else [])


@torch.inference_mode()
def predict_y(net: FALSRNet, y: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """Run the network on (N, 1, H, W) Y; with `tile`, in overlapping tiles of `tile` LR pixels.

    Each tile is extended by the network's receptive radius on every side, so the kept centre of
    every tile sees exactly the context it sees in whole-image inference: the result equals
    whole-image inference up to float rounding, with memory bounded by the tile size.
    """
    x = y.to(memory_format=torch.channels_last)
    _, _, h, w = y.shape
    if tile is None or (h <= tile and w <= tile):
        return net(x).contiguous()
    pad = net.receptive_radius()
    out = torch.empty(y.shape[0], 1, h * SCALE, w * SCALE, dtype=y.dtype, device=y.device)
    for top in _tiles(h, tile):
        for left in _tiles(w, tile):
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            t1, l1 = min(top + tile + pad, h), min(left + tile + pad, w)
            sr = net(x[:, :, t0:t1, l0:l1])
            bh, bw = min(tile, h - top), min(tile, w - left)
            dt, dl = (top - t0) * SCALE, (left - l0) * SCALE
            out[:, :, top * SCALE:(top + bh) * SCALE, left * SCALE:(left + bw) * SCALE] = \
                sr[:, :, dt:dt + bh * SCALE, dl:dl + bw * SCALE]
    return out


def upscale_rgb(net: nn.Module, lr_rgb: np.ndarray, tile: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 LR RGB -> (2H, 2W, 3) uint8 SR RGB, exactly as the FALSR release."""
    device = next(net.parameters()).device
    lr = torch.from_numpy(lr_rgb).permute(2, 0, 1)[None].to(torch.float64) / 255.0
    y = rgb_to_ypbpr(lr)[:, :1].to(device=device, dtype=torch.float32)
    up = torch.from_numpy(pil_bicubic_upscale(lr_rgb, SCALE)).permute(2, 0, 1)[None].to(torch.float64) / 255.0
    chroma = rgb_to_ypbpr(up)[:, 1:]
    sr_y = predict_y(net, y, tile).to(device="cpu", dtype=torch.float64)
    rgb = graph_ypbpr_to_rgb(torch.cat([sr_y, chroma], dim=1))
    return to_uint8_truncate(rgb)[0].permute(1, 2, 0).numpy()
