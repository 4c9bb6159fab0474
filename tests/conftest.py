"""Shared fixtures: the data folder (FALSR_DATA_DIR, else ../shared/data beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("FALSR_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "benchmarks").is_dir():
        pytest.skip(f"test data not found at {path} (set FALSR_DATA_DIR to a folder with benchmarks/ and pretrained/)")
    return path


@pytest.fixture(scope="session")
def pretrained_dir(data_dir) -> Path:
    path = data_dir / "pretrained"
    if not (path / "FALSR-A.pb").is_file():
        pytest.skip(f"released FALSR graphs not found in {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices (the search controller): one thread is faster, and immune to other jobs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
