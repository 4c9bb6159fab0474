"""Keyed, resumable training runs shared by the long benches (proxy fidelity, showdown).

A run is `falsr.training.train.train` on a config composed from `conf/train.yaml` with a list of overrides, in
this process (no interpreter start-up per run). Its key is a hash of the sorted overrides. Finished runs
are one JSON line each in a committed store (`bench/results/runs.jsonl`), so a rerun, in this sitting or
a later one, skips them; checkpoints and logs go to a git-ignored folder (`outputs/bench-runs/<key>/`).
Several processes can work through the same list at once: a run is claimed with an exclusive lock file beside
the store (so processes of different worktrees writing one store share their locks too), a lock whose process is
gone is stale and taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "bench" / "results" / "runs.jsonl"
RUNS_DIR = REPO / "outputs" / "bench-runs"
# What a run record keeps of metrics.json (small, committed).
KEEP = (
    "status",
    "error",
    "psnr",
    "ssim",
    "val",
    "params",
    "mult_adds",
    "genome",
    "train_seconds",
    "steps",
    "seed",
    "precision",
    "device",
    "curve",
)


# Overrides that only observe a run (falsr.training.curves never changes training): not part of its identity, so
# adding or moving curve points keeps every stored run's key.
OBSERVING = ("callbacks.learning_curve.",)


def run_key(overrides: Sequence[str]) -> str:
    """The run's identity: a hash of its sorted overrides (key=value strings), those in OBSERVING left out."""
    kept = [o for o in overrides if not o.startswith(OBSERVING)]
    return hashlib.sha1(json.dumps(sorted(kept)).encode()).hexdigest()[:12]


def load_store(store: Path = STORE) -> dict[str, dict]:
    """key -> the latest record of every finished run."""
    if not store.is_file():
        return {}
    out = {}
    for line in store.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["key"]] = rec
    return out


def _append(record: dict, store: Path) -> None:
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(record) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def _claim(lock: Path) -> bool:
    """Take the run's lock; False while another live process holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)
                return False  # alive: someone else is training it
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale: its process died
            except PermissionError:
                return False
    return False


def compose(overrides: Sequence[str], out: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from falsr.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={out}", "logger=none", "trainer.enable_progress_bar=false"],
        )


def checkpoint(record: dict) -> Path | None:
    """The run's best (here: final, validated once) checkpoint, while its git-ignored folder exists."""
    found = sorted((REPO / record["run_dir"] / "checkpoints").glob("best-*.ckpt"))
    return found[-1] if found else None


def _complete(record: dict | None, need: Sequence[str], weights: bool = False) -> bool:
    return (
        bool(record)
        and record.get("status") == "ok"
        and all(record.get(k) is not None for k in need)
        and (not weights or checkpoint(record) is not None)
    )


def train_run(
    overrides: Sequence[str],
    label: str = "",
    store: Path = STORE,
    quiet: bool = True,
    need: Sequence[str] = (),
    weights: bool = False,
) -> dict | None:
    """Train once (or return the stored record). None when another process holds the run right now.

    need: record fields a stored run must have to count as done (e.g. "curve" for runs stored before learning
    curves were recorded): one without them is trained again and its new record supersedes the old one.
    weights: a stored run counts as done only while its checkpoint exists (checkpoints are git-ignored, so a run
    stored on another machine has none): exporting weights trains it again, and that record supersedes."""
    key = run_key(overrides)
    done = load_store(store)
    if _complete(done.get(key), need, weights):
        return done[key]
    out = RUNS_DIR / key
    lock = lock_dir(store) / f"{key}.lock"
    if not _claim(lock):
        return None
    try:
        done = load_store(store)  # it may have finished while we waited for the lock
        if _complete(done.get(key), need, weights):
            return done[key]
        from falsr.training.train import train

        for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        cfg = compose(overrides, out)
        start, cpu_start = time.perf_counter(), time.process_time()
        sink = io.StringIO()
        redirect = (contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink)) if quiet else ()
        with contextlib.ExitStack() as stack:
            for r in redirect:
                stack.enter_context(r)
            metrics = train(cfg)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.log").write_text(sink.getvalue())
        record = {
            "key": key,
            "label": label,
            "overrides": list(overrides),
            "run_dir": str(out.relative_to(REPO)),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "threads": _threads(),
            **{k: metrics.get(k) for k in KEEP},
        }
        _append(record, store)
        return record
    finally:
        lock.unlink(missing_ok=True)


def lock_dir(store: Path) -> Path:
    """Where the run locks of a store live: beside it (git-ignored), not in a worktree's outputs/, so that benches
    of two worktrees writing one store never train the same run twice."""
    return store.resolve().parent / f".{store.stem}.locks"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def work_through(
    jobs: Iterable[tuple[str, Sequence[str]]],
    store: Path = STORE,
    poll_s: float = 20.0,
    wait: bool = True,
    need: Sequence[str] = (),
    weights: bool = False,
) -> dict[str, dict]:
    """Train every (label, overrides) job not yet in the store; jobs held by another process are waited for
    at the end (wait=True) or left to it. Prints one line per run. Returns key -> record."""
    jobs = list(jobs)
    results: dict[str, dict] = {}
    pending = list(jobs)
    total = len(jobs)
    while pending:
        busy = []
        for label, overrides in pending:
            key = run_key(overrides)
            t0 = time.perf_counter()
            rec = train_run(overrides, label, store, need=need, weights=weights)
            if rec is None:
                busy.append((label, overrides))
                continue
            results[key] = rec
            fresh = time.perf_counter() - t0 > 1.0
            val = rec.get("val") or {}
            vals = " ".join(f"{n} {v['psnr']:.3f}" for n, v in val.items() if v.get("psnr") is not None)
            print(
                f"[{len(results)}/{total}] {'trained' if fresh else 'stored '} {label} "
                f"{rec.get('status')} {vals} ({rec.get('wall_seconds')} s)",
                flush=True,
            )
        if not busy or not wait:
            break
        pending = busy
        time.sleep(poll_s)
    return results


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


if __name__ == "__main__":  # pragma: no cover - a helper module
    sys.exit("bench/_runs.py is a helper of bench/proxy_fidelity.py and bench/showdown.py")
