"""bench/_runs.py: a run held by another live process is left to it, whichever worktree's code asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import _runs  # noqa: E402


def test_a_run_held_by_a_live_process_beside_the_store_is_not_trained_again(tmp_path):
    """The lock lives beside the store, not in the code's outputs/: two worktrees writing one store (the benches run
    from detached worktrees into main's bench/results) see each other's claims."""
    store = tmp_path / "results" / "runs.jsonl"
    overrides = ["model=genome", "trainer.max_steps=1"]
    key = _runs.run_key(overrides)
    assert _runs.lock_dir(store) == tmp_path / "results" / ".runs.locks"
    assert not _runs.lock_dir(store).is_relative_to(REPO)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        lock = _runs.lock_dir(store) / f"{key}.lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(str(holder.pid))
        assert _runs.train_run(overrides, "held", store) is None  # left to its holder, nothing trained or stored
        assert not store.exists() and lock.read_text() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert _runs._claim(lock)  # its holder gone: stale, taken over
