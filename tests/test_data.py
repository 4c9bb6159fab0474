"""SR data pipeline on the shared images: LR generation, patches, sampler, caches, benchmarks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from falsr.errors import UserError
from falsr.protocol.images import read_pair, read_rgb
from falsr.training.data import (
    BenchmarkDataset,
    PairStore,
    PatchDataset,
    PatchSampler,
    SRDataModule,
    list_images,
    pair_store,
)


@pytest.fixture(scope="module")
def t91(data_dir):
    path = data_dir / "train" / "T91"
    if not path.is_dir():
        pytest.skip(f"T91 training images not found at {path}")
    return path


def test_on_the_fly_lr_is_the_benchmark_downscale(data_dir):
    """Training LR = the MATLAB bicubic that made the shared LR files (bit for bit)."""
    for hr_path in sorted((data_dir / "benchmarks" / "Set5").glob("*_HR.png"))[:3]:
        hr, lr = read_pair(hr_path, None, 2)
        assert np.array_equal(lr, read_rgb(str(hr_path).replace("_HR", "_LR")))
        assert hr.shape[:2] == (2 * lr.shape[0], 2 * lr.shape[1])


def test_patches_aligned_augmented_and_in_range(t91):
    ds = PatchDataset(pair_store(t91), patch_size=64)
    items = list(PatchSampler(len(ds), 64, seed=1))
    for item in items:
        lr, hr = ds[item]
        assert lr.shape == (1, 32, 32) and hr.shape == (1, 64, 64) and lr.dtype == torch.float32
        assert 0 <= lr.min() and lr.max() <= 1
        # LR is the (antialiased) x1/2 of HR at the same place and orientation: close to a 2x2 mean (at most
        # 0.018 on the 53-image shared T91, 0.025 on the sharper classic T91 that the fetcher brings).
        assert (F.avg_pool2d(hr[None], 2)[0] - lr)[:, 2:-2, 2:-2].abs().mean() < 0.03
    # Random geometry: the 64 samples do not all share one orientation or position.
    assert len({tuple(ds[it][0][0, :2, :2].flatten().tolist()) for it in items}) > 60


def test_sampler_is_seeded_by_seed_and_epoch(t91):
    s = PatchSampler(53, 100, seed=3)
    first = list(s)
    assert first == list(PatchSampler(53, 100, seed=3)) and len(first) == 100
    assert sorted(i for i, _ in first[:53]) == list(range(53))  # every image once per round
    s.set_epoch(1)
    assert list(s) != first
    assert list(PatchSampler(53, 100, seed=4)) != first


def test_batches_do_not_depend_on_worker_count(t91):
    dm = SRDataModule(train_dir=str(t91), val_sets=[], patch_size=48, batch_size=8, samples_per_epoch=32, seed=5)
    dm.setup("fit")
    batches0 = [b[1] for b in dm.train_dataloader()]
    dm.num_workers = 2
    batches2 = [b[1] for b in dm.train_dataloader()]
    assert len(batches0) == 4
    assert all(torch.equal(a, b) for a, b in zip(batches0, batches2))


def test_memory_mapped_cache_matches_ram(t91, tmp_path):
    files = list_images(t91)[:4]
    ram = PairStore(files, [None] * 4, 2)
    mm = PairStore(files, [None] * 4, 2, max_ram_gb=0, cache_dir=tmp_path)
    again = PairStore(files, [None] * 4, 2, max_ram_gb=0, cache_dir=tmp_path)  # reuses the file
    assert mm.path is not None and len(list(tmp_path.glob("*.u8"))) == 1
    for i in range(4):
        for a, b, c in zip(ram[i], mm[i], again[i]):
            assert np.array_equal(a, b) and np.array_equal(a, c)
    with pytest.raises(UserError, match="cache_dir"):
        PairStore(files, [None] * 4, 2, max_ram_gb=0, cache_dir=None)


def test_paired_lr_folder(data_dir, tmp_path):
    """A paired LR folder is read (names: same, _HR->_LR, or DIV2K's <stem>x2) instead of downscaling."""
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    set5 = data_dir / "benchmarks" / "Set5"
    for hr in sorted(set5.glob("*_HR.png"))[:2]:
        (tmp_path / "hr" / hr.name).symlink_to(hr)
        lr = hr.with_name(hr.name.replace("_HR", "_LR"))
        (tmp_path / "lr" / f"{hr.stem}x2.png").symlink_to(lr)
    store = pair_store(tmp_path / "hr", tmp_path / "lr", 2)
    hr0, lr0 = store[0]
    assert np.array_equal(lr0, read_rgb(sorted(set5.glob("*_LR.png"))[0]))
    assert hr0.shape[:2] == (2 * lr0.shape[0], 2 * lr0.shape[1])


def test_benchmark_items(data_dir):
    ds = BenchmarkDataset(data_dir / "benchmarks" / "Set5")
    assert len(ds) == 5 and ds.name == "Set5"
    item = ds[0]
    h, w = item["y"].shape[-2:]
    assert item["pbpr"].shape == (2, 2 * h, 2 * w)
    assert item["hr_y"].shape == (1, 2 * h - 4, 2 * w - 4)


def test_clear_errors(t91, tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        list_images(tmp_path)
    with pytest.raises(UserError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(UserError, match="smaller than the HR patch"):
        PatchDataset(pair_store(t91), patch_size=512)
