"""Shared fixtures: where the (read-only) benchmark data lives."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder holding ``benchmarks/`` and ``train/``: ``$FALSR_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("FALSR_DATA_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not (path / "benchmarks").is_dir():
        source = "FALSR_DATA_DIR" if env else "default <repo>/../shared/data"
        pytest.skip(f"benchmark data not found at {path} ({source}); set FALSR_DATA_DIR to the data folder")
    return path
