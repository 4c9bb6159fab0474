"""The sub-packages (space, weights, protocol, training, search): what each holds, what stays torch-free."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_module_lives_in_the_sub_package_its_init_names():
    src = REPO / "src" / "falsr"
    assert sorted(p.name for p in src.glob("*.py")) == ["__init__.py", "cli.py", "errors.py", "fetch.py", "summary.py"]
    for pkg in ("space", "weights", "protocol", "training", "search", "latency"):
        doc = importlib.import_module(f"falsr.{pkg}").__doc__
        modules = sorted(p.stem for p in (src / pkg).glob("*.py") if p.stem != "__init__")
        assert modules and all(f"falsr.{pkg}.{m}" in doc for m in modules), (pkg, modules)


def test_the_file_functions_import_from_the_package():
    from falsr.weights import load_weights, save_weights
    from falsr.weights.files import load_weights as direct

    assert load_weights is direct and callable(save_weights)


def test_the_torch_free_parts_stay_torch_free():
    code = "import sys, falsr.space.cost, falsr.weights.tf_graph; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_module_entry_points_still_run():
    proc = subprocess.run(
        [sys.executable, "-m", "falsr.summary", "model=falsr_b"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "total: 324,745 params, 74.50G mult-adds" in proc.stdout
