"""bench/proxy_fidelity.py --quick: the reduced run trains its panel and prints the tau table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # end to end through the scripts: `pytest -m "not slow"` skips them


def test_proxy_fidelity_quick(data_dir, tmp_path):
    env = {**os.environ, "FALSR_DATA_DIR": str(data_dir), "FALSR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "bench/proxy_fidelity.py", "--quick"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "| q10 | holdout |" in out and "| q10 | Set5 |" in out
    assert "Missing runs" not in out
    tau_cells = [line.split("|")[3] for line in out.splitlines() if line.startswith("| q10 |")]
    assert all("(n=" in cell and "nan" not in cell for cell in tau_cells)  # a tau over every quick genome
