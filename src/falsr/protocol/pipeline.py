"""The released FALSR pipeline around a Y-channel network: LR RGB -> (Y input, chroma) -> SR RGB uint8.

The network sees Y of YPbPr of the LR image; chroma comes from a PIL-bicubic x2 upscale of the LR
RGB; the output is converted back with the graphs' own YCbCr->RGB, scaled by 255, clipped and
truncated to uint8. Only composition: every conversion is the protocol's own function (falsr.protocol.color,
falsr.protocol.resize, falsr.protocol.metrics), so `evaluate.py`, `upscale.py` and validation during training give the
same numbers by construction. Large images go through the network in overlapping tiles.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from falsr.errors import UserError
from falsr.protocol.color import graph_ypbpr_to_rgb, rgb_to_ypbpr
from falsr.protocol.metrics import to_uint8_truncate
from falsr.protocol.resize import pil_bicubic_upscale
from falsr.space.genome import DEFAULT_SCALE
from falsr.space.network import FALSRNet

# The one precision vocabulary of every option that picks a precision: `precision=` of evaluate.py and upscale.py,
# `module.val_precision`, `callbacks.learning_curve.val_precision`, and `trainer.precision` (which also takes
# Lightning's own values). auto: bf16 where bf16 is fast (fast_bf16), else fp32. Table I figures are fp32 figures;
# bf16 is a speed option (bench/evaluate_speed.py --precision, bench/bf16_validation.py).
PRECISIONS = ("fp32", "bf16", "auto")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def fast_bf16() -> bool:
    """True where bf16 is a speed-up: a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def pick_precision(value, option: str = "precision") -> str:
    """fp32 or bf16 for a `option=value` setting (auto resolved here); a one-line error for any other value."""
    value = str(value)
    if value not in PRECISIONS:
        was = {"32": " (fp32 now)", "16": " (no fp16 here: bf16)", "fp16": " (no fp16 here: bf16)"}.get(value, "")
        raise UserError(f"unknown {option} {value!r}{was}: choose one of {', '.join(PRECISIONS)}")
    if value == "auto":
        return "bf16" if fast_bf16() else "fp32"
    return value


def pick_device(name: str = "auto") -> torch.device:
    """The device inference runs on (evaluate.py, upscale.py: their `device=`): auto = CUDA if present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a `precision=` value (auto resolved); one-line error for an unknown one."""
    return DTYPES[pick_precision(precision)]


def with_precision(net: nn.Module, precision: str = "fp32") -> nn.Module:
    """Cast the network's weights to `precision` (fp32, bf16, auto); predict_y then feeds it that dtype."""
    return net.to(precision_dtype(precision))


def _net_dtype_device(net) -> tuple[torch.dtype, torch.device]:
    """dtype and device of a network's weights (an exported-ONNX runner says its own)."""
    if isinstance(net, nn.Module):
        param = next(net.parameters())
        return param.dtype, param.device
    return net.dtype, net.device


def network_input(lr_rgb: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 LR RGB -> (1, H, W) float32 Y of YPbPr in [0, 1] (the network's input)."""
    rgb01 = torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1).to(torch.float64) / 255.0
    return rgb_to_ypbpr(rgb01)[:1].to(torch.float32)


def chroma(lr_rgb: np.ndarray, scale: int = DEFAULT_SCALE) -> Tensor:
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


def _tiles(length: int, tile: int) -> list[int]:
    """Tile origins covering [0, length): a regular grid, the last tile flush with the end."""
    starts = list(range(0, max(length - tile, 0) + 1, tile))
    if length > tile and (length - tile) % tile:
        starts.append(length - tile)
    return starts


@torch.inference_mode()
def predict_y(net: FALSRNet, y: Tensor, tile: int | None = None) -> Tensor:
    """Run the network on (N, 1, H, W) Y; with `tile`, in overlapping tiles of `tile` LR pixels.

    Each tile is extended by the network's receptive radius on every side, so the kept centre of
    every tile sees exactly the context it sees in whole-image inference: the result equals
    whole-image inference up to float rounding, with memory bounded by the tile size.
    The network runs in its weights' dtype (see with_precision); the result is in y's dtype.
    """
    dtype, _ = _net_dtype_device(net)
    x = y.to(dtype=dtype, memory_format=torch.channels_last)
    _, _, h, w = y.shape
    if tile is None or (h <= tile and w <= tile):
        return net(x).to(y.dtype).contiguous()
    pad, s = net.receptive_radius(), net_scale(net)
    out = torch.empty(y.shape[0], 1, h * s, w * s, dtype=y.dtype, device=y.device)
    for top in _tiles(h, tile):
        for left in _tiles(w, tile):
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            t1, l1 = min(top + tile + pad, h), min(left + tile + pad, w)
            sr = net(x[:, :, t0:t1, l0:l1])
            bh, bw = min(tile, h - top), min(tile, w - left)
            dt, dl = (top - t0) * s, (left - l0) * s
            out[:, :, top * s : (top + bh) * s, left * s : (left + bw) * s] = sr[
                :, :, dt : dt + bh * s, dl : dl + bw * s
            ]
    return out


def net_scale(net) -> int:
    """The upscaling factor of a FALSRNet or an OnnxNet (files exported before scales existed are x2)."""
    return int(getattr(net, "scale", DEFAULT_SCALE))


def upscale_rgb(net: nn.Module, lr_rgb: np.ndarray, tile: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 LR RGB -> (sH, sW, 3) uint8 SR RGB at the network's scale s, exactly as the FALSR release.

    `net`: a FALSRNet, or anything with its call signature and `dtype`, `device`, `receptive_radius()`, `scale`
    (falsr.weights.export.OnnxNet runs an exported ONNX file).
    """
    _, device = _net_dtype_device(net)
    y = network_input(lr_rgb)[None].to(device)
    sr_y = predict_y(net, y, tile).to(device="cpu", dtype=torch.float64)
    return sr_rgb(sr_y, chroma(lr_rgb, net_scale(net))[None])[0].permute(1, 2, 0).numpy()
