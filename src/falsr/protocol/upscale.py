"""Upscale one image or a folder with any model and weights at its scale (x2, x3 or x4), writing PNGs.

`python upscale.py model=falsr_b model.weights=FALSR-B.pb input=photo.png output=out/`
`python upscale.py onnx=falsr_b.onnx input=photo.png output=out/` runs a file made by export.py with
onnxruntime instead (upscale_files with falsr.weights.export.OnnxNet needs neither Lightning nor Hydra).
Large images run in overlapping tiles (`tile=`, LR pixels) so memory stays bounded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm import tqdm

from falsr.errors import UserError
from falsr.protocol.images import IMAGE_SUFFIXES, image_files, read_rgb, write_png
from falsr.protocol.pipeline import net_scale, pick_device, pick_precision, upscale_rgb, with_precision

log = logging.getLogger(__name__)


def input_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        images = image_files(path)
        if images:
            return images
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
    raise UserError(f"input {path} not found: give an image file or a folder of images (input=<path>)")


def upscale_files(net, images: list[Path], out_dir: Path, tile: int | None = None) -> list[str]:
    """Upscale each image with `net` (a network or an OnnxNet) into out_dir/<stem>_x<scale>.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(images, desc="upscale", unit="img"):
        target = out_dir / f"{path.stem}_x{net_scale(net)}.png"
        write_png(target, upscale_rgb(net, read_rgb(path), tile))
        written.append(str(target))
    return written


def load_model(cfg):
    """The network to run: an exported ONNX file (`onnx=`) or the configured model at `precision`."""
    precision = str(cfg.get("precision", "fp32"))
    pick_precision(precision)  # an unknown value fails before any weights load
    if cfg.get("onnx"):
        from falsr.weights.export import OnnxNet

        if precision not in ("fp32", "auto"):
            raise UserError(f"precision={precision} applies to PyTorch models: an ONNX file runs as exported (fp32)")
        return OnnxNet(cfg.onnx)
    from hydra.utils import instantiate

    if not cfg.model.get("weights"):
        log.warning("model.weights is not set: upscaling with an untrained network")
    net = instantiate(cfg.model).to(pick_device(cfg.device)).eval().to(memory_format=torch.channels_last)
    return with_precision(net, precision)


def run(cfg) -> list[str]:
    if not cfg.input:
        raise UserError("no input given: upscale.py input=<image or folder> output=<folder>")
    images = input_images(Path(cfg.input))
    out_dir = Path(cfg.output)
    written = upscale_files(load_model(cfg), images, out_dir, cfg.tile)
    print(f"wrote {len(written)} image(s) to {out_dir}")
    return written
