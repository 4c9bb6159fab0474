"""Shared fixtures: the data folder (FALSR_DATA_DIR, else ../shared/data beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
