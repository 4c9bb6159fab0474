"""Benchmark folders (Set5, Set14, B100, Urban100): LR/HR pairs in either common layout.

* FALSR release layout: `img_XXX_SRF_<s>_HR.png` beside `img_XXX_SRF_<s>_LR.png` (Set5/Set14 ship s = 2).
  At a scale s for which a folder has no `_SRF_<s>_` pairs (x3/x4 on the shipped Set5/Set14), its `_SRF_<k>_HR`
  images are read as HR only (below). The shipped x2 HR images give the same modcrop at 3 and 4 as the original
  images would: the originals' odd sides (Set14: 361, 529, 391) are not multiples of 3 or 4, so cutting the
  one pixel the x2 files lack first changes nothing.
* HR-only layout (any .png/.bmp/.jpg): HR is cropped to a multiple of the scale (`modcrop`) and LR made by the
  MATLAB-compatible bicubic downscale ``imresize(hr, 1/s)``, the standard in SR papers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from falsr.errors import UserError
from falsr.protocol.images import image_files, read_pair, single_channel

_RELEASE_HR = re.compile(r"^(?P<stem>.*)_SRF_(?P<scale>\d+)_HR$")  # img_001_SRF_2_HR (the FALSR release's names)


@dataclass
class ImagePair:
    name: str
    lr: np.ndarray  # (h, w, 3) uint8
    hr: np.ndarray  # (scale*h, scale*w, 3) uint8
    grey: bool = False  # the HR file is single-channel (scored on its grey values under protocol=matlab)


def benchmark_dir(data_dir: str | Path, name: str) -> Path:
    return _existing(Path(data_dir) / "benchmarks" / name)


def _existing(folder: Path) -> Path:
    if not folder.is_dir():
        raise UserError(
            f"benchmark folder {folder} not found: put {folder.name} there (release layout *_HR.png + "
            "*_LR.png, or HR images only) or point paths.data_dir / FALSR_DATA_DIR at the folder holding "
            "benchmarks/"
        )
    return folder


def list_pairs(folder: Path, scale: int = 2) -> list[tuple[str, Path, Path | None]]:
    """(name, HR path, LR path or None) for every image of a benchmark folder at `scale`, sorted by name.

    `*_HR` files are paired with their `*_LR` partners, except release-layout `*_SRF_<k>_HR` files of another
    scale k when the folder has none of `scale`: those are HR only (LR made from them at `scale`).
    """
    folder = _existing(Path(folder).expanduser())
    files = image_files(folder)
    hr_files = [p for p in files if p.name.endswith(f"_HR{p.suffix}")]
    release = {p: _RELEASE_HR.match(p.stem) for p in hr_files}
    if hr_files and all(release[p] and int(release[p]["scale"]) != scale for p in hr_files):
        by_stem = {}  # one HR per image (the smallest k where several scales ship)
        for p in sorted(hr_files, key=lambda p: int(release[p]["scale"])):
            by_stem.setdefault(release[p]["stem"], p)
        return sorted(((stem, p, None) for stem, p in by_stem.items()), key=lambda t: t[1].name)
    hr_files = [p for p in hr_files if not release[p] or int(release[p]["scale"]) == scale]
    if hr_files:
        pairs = []
        for hr in hr_files:
            lr = hr.with_name(hr.name[: -len(f"_HR{hr.suffix}")] + f"_LR{hr.suffix}")
            if not lr.is_file():
                raise UserError(
                    f"{hr} has no LR partner {lr.name}: add it, or remove the _HR suffix to have LR made "
                    "by bicubic downscaling"
                )
            pairs.append((hr.name[: -len(f"_HR{hr.suffix}")], hr, lr))
        return pairs
    images = [p for p in files if not p.stem.endswith("_LR")]
    if not images:
        raise UserError(f"no images in benchmark folder {folder} (expected *_HR.png + *_LR.png pairs or HR images)")
    return [(p.stem, p, None) for p in images]


def load_pair(name: str, hr_path: Path, lr_path: Path | None, scale: int = 2) -> ImagePair:
    hr, lr = read_pair(hr_path, lr_path, scale)
    return ImagePair(name, lr, hr, single_channel(hr_path))


def load_benchmark(data_dir: str | Path, name: str, scale: int = 2) -> list[ImagePair]:
    return [load_pair(n, hr, lr, scale) for n, hr, lr in list_pairs(benchmark_dir(data_dir, name), scale)]
