"""Shared fixtures: the data folder (FALSR_DATA_DIR, else data/ in the checkout, else ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_dirs() -> list[Path]:
    """FALSR_DATA_DIR alone where set; else the checkout's data/ (`make data` fills it), then ../shared/data."""
    env = os.environ.get("FALSR_DATA_DIR")
    return [Path(env)] if env else [REPO / "data", REPO.parent / "shared" / "data"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    for path in _data_dirs():
        if (path / "benchmarks").is_dir():
            return path
    pytest.skip(
        f"test data not found in {' or '.join(map(str, _data_dirs()))}: run `make data` (or "
        "`python -m falsr.fetch default`), or set FALSR_DATA_DIR to a folder with benchmarks/ and train/T91/"
    )


@pytest.fixture(scope="session")
def pretrained_dir() -> Path:
    """The released graphs, wherever they are: FALSR_DATA_DIR, the fetcher's data/pretrained, ../shared/data."""
    for path in _data_dirs():
        if (path / "pretrained" / "FALSR-A.pb").is_file():
            return path / "pretrained"
    pytest.skip(
        f"released FALSR graphs not found in {' or '.join(str(p / 'pretrained') for p in _data_dirs())}: "
        "run `python -m falsr.fetch FALSR-weights`, or set FALSR_DATA_DIR"
    )


@pytest.fixture(scope="module")
def tiny_data(data_dir, tmp_path_factory):
    """A data folder for tiny searches: 4 training images and a one-image benchmark `Tiny` (a Set5 crop)."""
    import shutil

    import numpy as np

    from falsr.protocol.images import read_rgb, write_png

    root = tmp_path_factory.mktemp("data")
    train = root / "train" / "T4"
    train.mkdir(parents=True)
    for path in sorted((data_dir / "train" / "T91").iterdir())[:4]:
        shutil.copy(path, train / path.name)
    bench = root / "benchmarks" / "Tiny"
    bench.mkdir(parents=True)
    hr = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_HR.png")[200:328, 200:328]
    lr = read_rgb(data_dir / "benchmarks" / "Set5" / "img_002_SRF_2_LR.png")[100:164, 100:164]
    write_png(bench / "img_001_SRF_2_HR.png", np.ascontiguousarray(hr))
    write_png(bench / "img_001_SRF_2_LR.png", np.ascontiguousarray(lr))
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices (the search controller): one thread is faster, and immune to other jobs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def require_engine(reason: str, require_env: str) -> None:
    """Skip a cluster test module, saying why, where its engine is down; fail instead where `require_env` is set
    (CI started the engine: a skip would hide that it is broken)."""
    if reason and os.environ.get(require_env):
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def paper_space():
    """Every test starts and ends in the paper's search space (falsr.space.genome's process-wide space)."""
    from falsr.space.genome import set_space

    set_space(None)
    yield
    set_space(None)
