"""A visual comparison like the paper's Fig. 7: side-by-side crops of HR, bicubic and each model.

`python compare.py models=[falsr_a,falsr_b,falsr_c] benchmark=Set14 images=[img_005]` writes one PNG per
image: the whole HR image (scaled to the panel height) with the crop outlined, then the crop of HR,
of bicubic (PIL bicubic x2, the protocol's bicubic) and of each model's output, each enlarged by pixel
replication, with the protocol PSNR of that crop (Y, rounded, data range 255; no border cut: the crop
is the region compared) in its caption. The crop is where bicubic is worst, unless `at=[top,left]`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from falsr.errors import UserError
from falsr.protocol.benchmarks import ImagePair, benchmark_dir, list_pairs, load_pair
from falsr.protocol.color import rgb_to_ycbcr_y_np
from falsr.protocol.images import write_png
from falsr.protocol.metrics import psnr_ssim_y
from falsr.protocol.pipeline import net_scale, pick_device, upscale_rgb
from falsr.protocol.resize import pil_bicubic_upscale

log = logging.getLogger(__name__)

GAP = 8  # pixels between panels and around the figure
CAPTION = 24  # caption strip under each panel
BACKGROUND = (255, 255, 255)
OUTLINE = (255, 0, 0)


@dataclass
class Panel:
    label: str
    rgb: np.ndarray  # the whole (2H, 2W, 3) uint8 image this panel crops
    psnr: float | None = None  # protocol PSNR of the crop (None for HR)

    @property
    def caption(self) -> str:
        return self.label if self.psnr is None else f"{self.label} {self.psnr:.2f} dB"


@dataclass
class Figure:
    path: Path
    crop: tuple[int, int, int]  # top, left, size in HR pixels
    panels: list[Panel] = field(default_factory=list)


def crop_psnr(sr: np.ndarray, hr: np.ndarray, top: int, left: int, size: int) -> float:
    """Protocol PSNR of one crop (the crop is the compared region, so no further border is cut)."""
    window = (slice(top, top + size), slice(left, left + size))
    return psnr_ssim_y(sr[window], hr[window], border=0)[0]


def worst_crop(bicubic: np.ndarray, hr: np.ndarray, size: int, margin: int = 4) -> tuple[int, int]:
    """(top, left) of the size x size window with the largest bicubic error on Y: where SR has most to show."""
    h, w = hr.shape[:2]
    if size + 2 * margin > min(h, w):
        raise UserError(f"crop={size} does not fit the {w}x{h} image: choose crop <= {min(h, w) - 2 * margin}")
    err = (rgb_to_ycbcr_y_np(bicubic) - rgb_to_ycbcr_y_np(hr)) ** 2
    sums = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image: every window sum in O(1)
    boxes = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    boxes = boxes[margin : h - size - margin + 1, margin : w - size - margin + 1]
    top, left = np.unravel_index(np.argmax(boxes), boxes.shape)
    return int(top) + margin, int(left) + margin


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def layout_size(hr_shape: tuple[int, ...], size: int, zoom: int, n_crops: int) -> tuple[int, int]:
    """(width, height) of the figure: an overview panel, then n_crops crop panels, captions below."""
    panel = size * zoom
    overview = round(hr_shape[1] * panel / hr_shape[0])
    return GAP + overview + n_crops * (GAP + panel) + GAP, GAP + panel + CAPTION


def draw(fig: Figure, hr: np.ndarray, zoom: int) -> Image.Image:
    top, left, size = fig.crop
    panel = size * zoom
    width, height = layout_size(hr.shape, size, zoom, len(fig.panels))
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    pen, font = ImageDraw.Draw(canvas), _font()
    scale = panel / hr.shape[0]
    overview = Image.fromarray(hr).resize((round(hr.shape[1] * scale), panel), Image.BICUBIC)
    canvas.paste(overview, (GAP, GAP))
    pen.rectangle(
        [GAP + left * scale, GAP + top * scale, GAP + (left + size) * scale, GAP + (top + size) * scale],
        outline=OUTLINE,
        width=2,
    )
    pen.text((GAP, GAP + panel + 4), "HR (whole)", fill=(0, 0, 0), font=font)
    x = GAP + overview.width + GAP
    for p in fig.panels:
        crop = Image.fromarray(p.rgb[top : top + size, left : left + size]).resize((panel, panel), Image.NEAREST)
        canvas.paste(crop, (x, GAP))
        pen.text((x, GAP + panel + 4), p.caption, fill=(0, 0, 0), font=font)
        x += panel + GAP
    return canvas


def compare_image(
    pair: ImagePair,
    models: dict[str, torch.nn.Module],
    path: str | Path,
    size: int = 120,
    at: tuple[int, int] | None = None,
    zoom: int = 2,
    tile: int | None = None,
) -> Figure:
    """Write the comparison PNG of one image; returns what it shows (crop, captions, PSNRs)."""
    hr = pair.hr
    bicubic = pil_bicubic_upscale(pair.lr, hr.shape[0] // pair.lr.shape[0])
    top, left = at if at is not None else worst_crop(bicubic, hr, size)
    if top < 0 or left < 0 or top + size > hr.shape[0] or left + size > hr.shape[1]:
        raise UserError(f"at=[{top},{left}] with crop={size} leaves the {hr.shape[1]}x{hr.shape[0]} image")
    fig = Figure(Path(path), (top, left, size), [Panel("HR", hr), Panel("Bicubic", bicubic)])
    fig.panels += [Panel(label, upscale_rgb(net, pair.lr, tile)) for label, net in models.items()]
    for p in fig.panels[1:]:
        p.psnr = crop_psnr(p.rgb, hr, top, left, size)
    fig.path.parent.mkdir(parents=True, exist_ok=True)
    write_png(fig.path, np.asarray(draw(fig, hr, zoom)))
    return fig


def load_models(names, weights, data_dir: Path, device: torch.device) -> dict[str, torch.nn.Module]:
    """Label -> network for each entry: a conf/model name (weights given, else pretrained/<name>.pb) or a genome."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from falsr import CONF_DIR
    from falsr.space.genome import GenomeError
    from falsr.weights.model import build_model

    models = {}
    for entry in names:
        entry = str(entry)
        config = CONF_DIR / "model" / f"{entry}.yaml"
        if config.is_file():
            cfg = OmegaConf.load(config)
            cfg.weights = weights.get(entry) or cfg.get("weights") or data_dir / "pretrained" / f"{cfg.name}.pb"
            if not Path(cfg.weights).is_file():
                raise UserError(f"no weights for {entry}: {cfg.weights} not found (set weights.{entry}=<file>)")
            cfg.weights = str(cfg.weights)
            net = instantiate(cfg)
        else:
            try:
                net = build_model(entry, weights=weights.get(entry))
            except GenomeError:
                options = ", ".join(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
                raise UserError(f"unknown model {entry!r}: use one of {options} or a genome string") from None
            net.name = str(net.genome)  # the compact form labels the panel
            if not weights.get(entry):
                log.warning("%s: no weights given, comparing an untrained network", entry)
        models[net.name] = net.to(device).eval().to(memory_format=torch.channels_last)
    return models


def run(cfg) -> list[Figure]:
    """compare.py: one PNG per chosen image of a benchmark folder."""
    data_dir = Path(cfg.paths.data_dir)
    models = load_models(list(cfg.models), dict(cfg.weights or {}), data_dir, pick_device(cfg.device))
    scales = {label: net_scale(net) for label, net in models.items()}
    if len(set(scales.values())) > 1:
        raise UserError(
            "the models have different scales ("
            + ", ".join(f"{k}: x{v}" for k, v in scales.items())
            + "): compare models of one scale"
        )
    scale = next(iter(scales.values()))
    pairs = list_pairs(benchmark_dir(data_dir, cfg.benchmark), scale)
    wanted = [str(w) for w in cfg.images or []]
    short = {p[0]: p[0].split("_SRF_")[0] for p in pairs}  # img_005_SRF_2 may be called img_005
    chosen = [p for p in pairs if not wanted or p[0] in wanted or short[p[0]] in wanted]
    missing = sorted(set(wanted) - set(short) - set(short.values()))
    if missing:
        raise UserError(f"{cfg.benchmark} has no image {missing[0]!r}: choose from {', '.join(short.values())}")
    at = tuple(cfg.at) if cfg.at is not None else None
    figures = []
    for name, hr_path, lr_path in chosen:
        png = Path(cfg.output) / f"{cfg.benchmark}_{short[name]}.png"
        fig = compare_image(load_pair(name, hr_path, lr_path, scale), models, png, cfg.crop, at, cfg.zoom, cfg.tile)
        print(f"{fig.path}: crop {fig.crop[2]}px at {fig.crop[:2]}: " + ", ".join(p.caption for p in fig.panels[1:]))
        figures.append(fig)
    return figures
