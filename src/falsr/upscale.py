"""Upscale one image or a folder x2 with any model and weights, writing PNGs.

`python upscale.py model=falsr_b model.weights=FALSR-B.pb input=photo.png output=out/`
Large images run in overlapping tiles (`tile=`, LR pixels) so memory stays bounded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from falsr.errors import UserError
from falsr.images import IMAGE_SUFFIXES, image_files, read_rgb, write_png
from falsr.pipeline import pick_device, upscale_rgb

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


def run(cfg: DictConfig) -> list[str]:
    if not cfg.input:
        raise UserError("no input given: upscale.py input=<image or folder> output=<folder>")
    images = input_images(Path(cfg.input))
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.model.get("weights"):
        log.warning("model.weights is not set: upscaling with an untrained network")
    net = instantiate(cfg.model).to(pick_device(cfg.device)).eval().to(memory_format=torch.channels_last)
    written = []
    for path in tqdm(images, desc="upscale", unit="img"):
        target = out_dir / f"{path.stem}_x2.png"
        write_png(target, upscale_rgb(net, read_rgb(path), cfg.tile))
        written.append(str(target))
    print(f"wrote {len(written)} image(s) to {out_dir}")
    return written
