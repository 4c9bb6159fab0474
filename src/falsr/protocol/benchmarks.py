"""Benchmark folders (Set5, Set14, B100, Urban100): LR/HR pairs in either common layout.

* FALSR release layout: `img_XXX_SRF_2_HR.png` beside `img_XXX_SRF_2_LR.png`.
* HR-only layout (any .png/.bmp/.jpg): HR is cropped to a multiple of the scale and LR made by the
  MATLAB-compatible bicubic downscale, the standard in SR papers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from falsr.errors import UserError
from falsr.protocol.images import image_files, read_pair


@dataclass
class ImagePair:
    name: str
    lr: np.ndarray  # (h, w, 3) uint8
    hr: np.ndarray  # (scale*h, scale*w, 3) uint8


def benchmark_dir(data_dir: str | Path, name: str) -> Path:
    return _existing(Path(data_dir) / "benchmarks" / name)


def _existing(folder: Path) -> Path:
    if not folder.is_dir():
        raise UserError(f"benchmark folder {folder} not found: put {folder.name} there (release layout *_HR.png + "
                        "*_LR.png, or HR images only) or point paths.data_dir / FALSR_DATA_DIR at the folder holding "
                        "benchmarks/")
    return folder


def list_pairs(folder: Path, scale: int = 2) -> list[tuple[str, Path, Path | None]]:
    """(name, HR path, LR path or None) for every image of a benchmark folder, sorted by name."""
    folder = _existing(Path(folder).expanduser())
    files = image_files(folder)
    hr_files = [p for p in files if p.name.endswith(f"_HR{p.suffix}")]
    if hr_files:
        pairs = []
        for hr in hr_files:
            lr = hr.with_name(hr.name[: -len(f"_HR{hr.suffix}")] + f"_LR{hr.suffix}")
            if not lr.is_file():
                raise UserError(f"{hr} has no LR partner {lr.name}: add it, or remove the _HR suffix to have LR made "
                                "by bicubic downscaling")
            pairs.append((hr.name[: -len(f"_HR{hr.suffix}")], hr, lr))
        return pairs
    images = [p for p in files if not p.stem.endswith("_LR")]
    if not images:
        raise UserError(f"no images in benchmark folder {folder} (expected *_HR.png + *_LR.png pairs or HR images)")
    return [(p.stem, p, None) for p in images]


def load_pair(name: str, hr_path: Path, lr_path: Path | None, scale: int = 2) -> ImagePair:
    hr, lr = read_pair(hr_path, lr_path, scale)
    return ImagePair(name, lr, hr)


def load_benchmark(data_dir: str | Path, name: str, scale: int = 2) -> list[ImagePair]:
    return [load_pair(n, hr, lr, scale) for n, hr, lr in list_pairs(benchmark_dir(data_dir, name), scale)]
