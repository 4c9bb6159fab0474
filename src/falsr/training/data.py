"""Training and validation data: HR/LR pairs decoded once, random Y patches, benchmark folders.

* Training reads any folder of HR images (DIV2K_train_HR, T91, ...). LR images come from the same
  MATLAB-compatible bicubic x2 downscale that made the benchmark LR files (whole image, once), or from
  a paired LR folder. Decoded pairs are kept once per process (in RAM up to a bound, else in a
  memory-mapped file on disk), so a sample is a crop, never a PNG decode.
* Samples are drawn by `PatchSampler`, which hands each sample its own seed: crops are the same for
  any number of workers, and resuming at an epoch boundary replays the same data.
* Validation uses the evaluation protocol (falsr.protocol.pipeline / falsr.protocol.metrics) on benchmark folders
  `<dir>/<Name>/img_XXX_SRF_2_{HR,LR}.png`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from falsr.errors import UserError
from falsr.protocol.benchmarks import list_pairs, load_pair
from falsr.protocol.color import YPBPR_FROM_RGB
from falsr.protocol.images import IMAGE_SUFFIXES, image_files, read_pair
from falsr.protocol.metrics import protocol_y
from falsr.protocol.pipeline import chroma, network_input

_Y_WEIGHTS = YPBPR_FROM_RGB[0].astype(np.float32)  # the Y row of the protocol's YPbPr (network input)

log = logging.getLogger(__name__)


def list_images(folder: str | Path, what: str = "image") -> list[Path]:
    """Image files of a folder, sorted by name; a clear error for a missing or empty folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} not found (set paths.data_dir or FALSR_DATA_DIR, or data.train_dir)")
    files = image_files(folder)
    if not files:
        raise UserError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _lr_partner(hr: Path, lr_dir: Path, scale: int) -> Path:
    """The LR file paired with an HR file: same name, `_HR`->`_LR`, or DIV2K's `<stem>x2`."""
    stem = hr.stem
    candidates = [stem, stem.replace("HR", "LR"), f"{stem}x{scale}"]
    for name in candidates:
        for ext in (hr.suffix, *IMAGE_SUFFIXES):
            path = lr_dir / f"{name}{ext}"
            if path.is_file():
                return path
    raise UserError(f"no LR image for {hr.name} in {lr_dir} (tried {', '.join(candidates)} with image extensions)")


class PairStore:
    """Decoded (HR, LR) uint8 pairs: in RAM, or in a memory-mapped cache file when over `max_ram_gb`.

    The memory-mapped file is written once (keyed by the file list, sizes and modification times) and
    reopened lazily in every worker process, so workers share the page cache instead of copies.
    """

    def __init__(
        self,
        hr_files: Sequence[Path],
        lr_files: Sequence[Path | None],
        scale: int,
        max_ram_gb: float = 4.0,
        cache_dir: str | Path | None = None,
    ):
        self.names = [p.name for p in hr_files]
        self._ram: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._mmap: np.ndarray | None = None
        estimate = sum(_pixels(p) for p in hr_files) * 3 * (1 + 1 / scale**2)
        if estimate <= max_ram_gb * 2**30:
            self._ram = [read_pair(hr, lr, scale) for hr, lr in zip(hr_files, lr_files)]
            self.path = None
            return
        if cache_dir is None:
            raise UserError(
                f"decoded training images need ~{estimate / 2**30:.1f} GiB, more than "
                f"data.cache_ram_gb={max_ram_gb}: set data.cache_dir to a folder for a memory-mapped cache"
            )
        self.path, self.index = _build_mmap(hr_files, lr_files, scale, Path(cache_dir))

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._ram is not None:
            return self._ram[i]
        if self._mmap is None:
            self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r")
        (off_hr, shape_hr), (off_lr, shape_lr) = self.index[i]
        hr = self._mmap[off_hr : off_hr + int(np.prod(shape_hr))].reshape(shape_hr)
        lr = self._mmap[off_lr : off_lr + int(np.prod(shape_lr))].reshape(shape_lr)
        return hr, lr

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mmap"] = None  # reopened in the worker, not pickled as a copy
        return state


def _pixels(path: Path) -> int:
    with Image.open(path) as img:  # reads the header only
        return img.size[0] * img.size[1]


def _build_mmap(hr_files, lr_files, scale, cache_dir: Path):
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in hr_files]
    stamp += [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in lr_files if p is not None]
    key = hashlib.sha1(json.dumps([stamp, scale]).encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path, index_path = cache_dir / f"pairs-{key}.u8", cache_dir / f"pairs-{key}.json"
    if index_path.is_file():
        return data_path, json.loads(index_path.read_text())
    index, offset = [], 0
    tmp = data_path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        for n, (hr_path, lr_path) in enumerate(zip(hr_files, lr_files)):
            entry = []
            for arr in read_pair(hr_path, lr_path, scale):
                f.write(np.ascontiguousarray(arr).tobytes())
                entry.append((offset, list(arr.shape)))
                offset += arr.size
            index.append(entry)
            if n % 100 == 99:
                print(f"caching decoded training images: {n + 1}/{len(hr_files)}", flush=True)
    os.replace(tmp, data_path)
    index_path.write_text(json.dumps(index))
    return data_path, index


# Decoded pairs are kept per process: a Hydra multirun trains many candidates in one process.
_STORES: OrderedDict[tuple, PairStore] = OrderedDict()
_MAX_STORES = 2


HOLDOUT = "holdout"  # the name of the held-out training images in data.val_sets


def split_holdout(files: Sequence[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out) images: `holdout` images evenly spread over the sorted list are held out.

    Validation on them measures the training distribution without touching a test benchmark; the
    split depends only on the file names, so every run and every candidate of a search sees the same one.
    """
    files = list(files)
    if holdout <= 0:
        return files, []
    if holdout >= len(files):
        raise UserError(f"data.holdout={holdout} leaves no training image ({len(files)} in the folder): lower it")
    held = set(np.linspace(0, len(files) - 1, holdout).round().astype(int).tolist())
    if len(held) < holdout:
        raise UserError(f"data.holdout={holdout} is too many for {len(files)} images: lower it")
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def pair_store(
    train_dir, lr_dir=None, scale: int = 2, max_ram_gb: float = 4.0, cache_dir=None, holdout: int = 0
) -> PairStore:
    """The (cached) PairStore of a training folder, without its `holdout` held-out images."""
    hr_files, _ = split_holdout(list_images(train_dir, "training HR image"), holdout)
    lr_files = [_lr_partner(p, Path(lr_dir), scale) for p in hr_files] if lr_dir else [None] * len(hr_files)
    key = (tuple(str(p.resolve()) for p in hr_files), tuple(map(str, lr_files)), scale)
    if key not in _STORES:
        _STORES[key] = PairStore(hr_files, lr_files, scale, max_ram_gb, cache_dir)
        while len(_STORES) > _MAX_STORES:
            _STORES.popitem(last=False)
    _STORES.move_to_end(key)
    return _STORES[key]


def _y(rgb: np.ndarray) -> np.ndarray:
    """Y of YPbPr in [0, 1], float32 (the protocol's network input convention)."""
    return (rgb.astype(np.float32) @ _Y_WEIGHTS) * np.float32(1.0 / 255.0)


class PatchDataset(Dataset):
    """Random aligned (LR, HR) Y patches with flips and 90-degree rotations.

    Items are `(image_index, seed)` pairs from `PatchSampler`; returns float32 tensors (1, p, p) and
    (1, sp, sp) with p = patch_size // scale.
    """

    def __init__(self, store: PairStore, patch_size: int, scale: int = 2, augment: bool = True):
        if patch_size % scale or patch_size < scale:
            raise UserError(f"data.patch_size={patch_size} must be a positive multiple of the scale {scale}")
        self.store, self.scale, self.augment = store, scale, augment
        self.lr_patch = patch_size // scale
        sizes = [store[i][0].shape[:2] for i in range(len(store))]
        self.images = [i for i, (h, w) in enumerate(sizes) if min(h, w) >= patch_size]  # the store indices used
        small = [f"{store.names[i]} ({w}x{h})" for i, (h, w) in enumerate(sizes) if min(h, w) < patch_size]
        check_patch_fits(small, len(store), patch_size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item
        rng = np.random.default_rng(seed)
        hr, lr = self.store[self.images[index]]
        p, s = self.lr_patch, self.scale
        y, x = int(rng.integers(lr.shape[0] - p + 1)), int(rng.integers(lr.shape[1] - p + 1))
        lr_y = _y(lr[y : y + p, x : x + p])
        hr_y = _y(hr[s * y : s * (y + p), s * x : s * (x + p)])
        if self.augment:
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            lr_y, hr_y = np.rot90(lr_y, k), np.rot90(hr_y, k)
            if flip:
                lr_y, hr_y = lr_y[:, ::-1], hr_y[:, ::-1]
        return (torch.from_numpy(np.ascontiguousarray(lr_y))[None], torch.from_numpy(np.ascontiguousarray(hr_y))[None])


def check_patch_fits(small: list[str], total: int, patch_size: int, warn: bool = True) -> None:
    """Training images smaller than the HR patch are left out with a one-line warning (T91's t26.bmp is 92 pixels
    high: the budgets' 32-pixel LR patch is 128 HR at x4); none left is a one-line error."""
    if len(small) == total:
        raise UserError(
            f"every training image is smaller than the HR patch data.patch_size={patch_size} (e.g. "
            f"{small[0]}): lower the patch size"
        )
    if small and warn:
        log.warning(
            f"{len(small)} of {total} training images are smaller than the HR patch data.patch_size="
            f"{patch_size} and are left out: {', '.join(small)}"
        )


class PatchSampler(Sampler):
    """`samples_per_epoch` items `(image_index, seed)` per epoch, images in shuffled rounds.

    Everything derives from (seed, epoch): independent of worker count, replayable after a resume.
    The epoch is read from `epoch_of()` (the trainer's current epoch) when given: Lightning 2.6's own
    `set_epoch` call passes a count that is one too high after resuming from an end-of-epoch checkpoint.
    """

    def __init__(self, n_images: int, samples_per_epoch: int, seed: int, epoch_of: Callable[[], int] | None = None):
        self.n_images, self.samples_per_epoch, self.seed, self.epoch = n_images, samples_per_epoch, seed, 0
        self.epoch_of = epoch_of

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.epoch_of is not None:
            self.epoch = self.epoch_of()
        rng = np.random.default_rng([self.seed, self.epoch])
        rounds = -(-self.samples_per_epoch // self.n_images)
        order = np.concatenate([rng.permutation(self.n_images) for _ in range(rounds)])[: self.samples_per_epoch]
        seeds = rng.integers(2**63, size=self.samples_per_epoch)
        return iter(zip(order.tolist(), seeds.tolist()))


class BenchmarkDataset(Dataset):
    """One benchmark folder `img_XXX_SRF_<s>_{HR,LR}.png` prepared as the evaluation protocol does.

    Items: dict(y=(1, h, w) float32 network input, pbpr=(2, sh, sw) chroma, hr_y=(1, sH-4, sW-4)
    protocol Y of HR, name). An HR image without an LR file gets the MATLAB downscale.
    """

    def __init__(
        self,
        folder: str | Path,
        scale: int = 2,
        border: int = 2,
        pairs: Sequence[tuple[str, Path, Path | None]] | None = None,
        name: str | None = None,
    ):
        """A benchmark folder, or (with `pairs` and `name`) any list of (name, HR path, LR path or None)."""
        if pairs is None:
            folder = Path(folder).expanduser()
            pairs = list_pairs(folder, scale)
            name = folder.name
        self.name = name
        self.items = []
        for name, hr_path, lr_path in pairs:
            pair = load_pair(name, hr_path, lr_path, scale)
            hr_t = torch.from_numpy(pair.hr).permute(2, 0, 1)[None]
            self.items.append(
                {
                    "y": network_input(pair.lr),
                    "pbpr": chroma(pair.lr, scale),
                    "hr_y": protocol_y(hr_t, border)[0],
                    "name": name,
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class SRDataModule(pl.LightningDataModule):
    """Training patches from a folder of HR images; validation on benchmark folders (batch 1: sizes differ)."""

    def __init__(
        self,
        train_dir: str,
        val_sets: Sequence[str] = ("Set5",),
        benchmarks_dir: str | None = None,
        train_lr_dir: str | None = None,
        scale: int = 2,
        patch_size: int = 96,
        batch_size: int = 16,
        samples_per_epoch: int | None = None,
        augment: bool = True,
        num_workers: int = 0,
        cache_ram_gb: float = 4.0,
        cache_dir: str | None = None,
        seed: int = 0,
        holdout: int = 0,
    ):
        super().__init__()
        if HOLDOUT in (val_sets or []) and holdout <= 0:
            raise UserError(
                f"data.val_sets names '{HOLDOUT}' but data.holdout={holdout}: set data.holdout to the "
                "number of training images to hold out (e.g. 8)"
            )
        if batch_size < 1:
            raise UserError(f"data.batch_size={batch_size} must be positive")
        self.train_dir, self.train_lr_dir, self.benchmarks_dir = train_dir, train_lr_dir, benchmarks_dir
        self.val_sets = list(val_sets or [])
        self.scale, self.patch_size, self.batch_size = scale, patch_size, batch_size
        self.samples_per_epoch, self.augment, self.num_workers = samples_per_epoch, augment, num_workers
        self.cache_ram_gb, self.cache_dir, self.seed, self.holdout = cache_ram_gb, cache_dir, seed, holdout
        self.train_set: PatchDataset | None = None
        self.val_datasets: list[BenchmarkDataset] = []

    @property
    def val_names(self) -> list[str]:
        return list(self.val_sets)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            store = pair_store(
                self.train_dir, self.train_lr_dir, self.scale, self.cache_ram_gb, self.cache_dir, self.holdout
            )
            self.train_set = PatchDataset(store, self.patch_size, self.scale, self.augment)
        if not self.val_datasets and self.val_sets:
            root = Path(self.benchmarks_dir) if self.benchmarks_dir else None
            self.val_datasets = [
                self._holdout_set() if name == HOLDOUT else BenchmarkDataset(root / name if root else name, self.scale)
                for name in self.val_sets
            ]

    def _holdout_set(self) -> BenchmarkDataset:
        """The held-out training images, prepared like a benchmark (LR by the same MATLAB bicubic)."""
        _, held = split_holdout(list_images(self.train_dir, "training HR image"), self.holdout)
        lr_dir = Path(self.train_lr_dir) if self.train_lr_dir else None
        pairs = [(p.stem, p, _lr_partner(p, lr_dir, self.scale) if lr_dir else None) for p in held]
        return BenchmarkDataset(None, self.scale, pairs=pairs, name=HOLDOUT)

    def val_pairs(self, name: str) -> list[tuple[str, Path, Path | None]]:
        """(image name, HR path, LR path or None: the MATLAB downscale of HR) of the validation set `name`, as
        `setup` reads them (e.g. for a bicubic reference on the same images)."""
        if name == HOLDOUT:
            _, held = split_holdout(list_images(self.train_dir, "training HR image"), self.holdout)
            lr_dir = Path(self.train_lr_dir) if self.train_lr_dir else None
            return [(p.stem, p, _lr_partner(p, lr_dir, self.scale) if lr_dir else None) for p in held]
        root = Path(self.benchmarks_dir) if self.benchmarks_dir else None
        return list_pairs(root / name if root else Path(name), self.scale)

    def train_dataloader(self) -> DataLoader:
        n = len(self.train_set)
        samples = self.samples_per_epoch or n  # default: one random patch per image per epoch
        if samples < self.batch_size:
            raise UserError(
                f"data.samples_per_epoch={samples} is less than one batch (data.batch_size={self.batch_size})"
            )
        sampler = PatchSampler(n, samples, self.seed, epoch_of=self._current_epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def check(self) -> None:
        """What `setup` would reject, found without decoding a pixel (image headers only): missing or empty
        folders, too many held-out images, training images smaller than a patch, unknown benchmarks.
        The search calls it once before launching any candidate."""
        files = list_images(self.train_dir, "training HR image")
        train, _ = split_holdout(files, self.holdout)
        small = []
        for path in train:
            with Image.open(path) as img:
                if min(img.size) < self.patch_size:
                    small.append(f"{path.name} ({img.size[0]}x{img.size[1]})")
        check_patch_fits(small, len(train), self.patch_size, warn=False)  # the job warns, once
        if self.train_lr_dir:
            for path in train:
                _lr_partner(path, Path(self.train_lr_dir), self.scale)
        root = Path(self.benchmarks_dir) if self.benchmarks_dir else None
        for name in self.val_sets:
            if name != HOLDOUT:
                list_pairs(root / name if root else Path(name), self.scale)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def val_dataloader(self) -> list[DataLoader]:
        return [DataLoader(ds, batch_size=1, num_workers=0) for ds in self.val_datasets]
