"""The search journal: one JSON line per finished candidate (per candidate and rung with multi-fidelity
promotion: ``rung``, 0 for the first; a record without it, from a single-fidelity search, is rung 0), the
source of truth of a search.

Jobs append to it from their own processes (any Hydra launcher: in-process, joblib workers,
SLURM nodes sharing the sweep folder), so every append takes an exclusive `flock` and writes one
whole line, then fsyncs; a write that fails (a full disk) is cut off again, so the journal reads as before. A
line cut short by a kill is skipped when reading, with a one-line warning (once per process): its candidate (at that rung) is not journaled, so a resumed search trains it again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
JOURNAL_NAME = "journal.jsonl"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_OVER_CAP = "over_mult_adds_cap"  # violates the mult-adds constraint: never trained
STATUS_UNDER_FLOOR = "under_mult_adds_floor"  # below constraints.min_mult_adds: never trained
STATUS_OVER_LATENCY = "over_latency_cap"  # predicted slower than constraints.max_latency_ms: never trained
UNTRAINED = (STATUS_OVER_CAP, STATUS_UNDER_FLOOR, STATUS_OVER_LATENCY)  # infeasible by their analytic cost, journaled with the reason


def rung_of(record: dict) -> int:
    """A record's rung (0 where the journal predates multi-fidelity)."""
    return int(record.get("rung") or 0)


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        record = {**record, "time": record.get("time", time.time())}
        line = (json.dumps(record, allow_nan=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A previous writer killed mid-line leaves no newline: start ours on a fresh line.
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            try:
                if os.write(fd, line) < len(line):  # a full disk can take part of it
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # no torn line left behind: the journal reads as before
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def records(self) -> list[dict]:
        """Every complete record, in order (torn or corrupt lines skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if line.strip():
                    _warn_torn(self.path, number, line)
                continue
            if isinstance(record, dict) and "key" in record:
                out.append(record)
        return out

    def latest(self) -> dict[str, dict]:
        """Every genome key's record at its highest rung that trained ``ok``, else its last record (with one
        fidelity: simply its last record). A failed promotion leaves the candidate at its rung below."""
        return top_records(self.records())

    def by_rung(self) -> dict[tuple[str, int], dict]:
        """The last record of every (genome key, rung)."""
        return {(r["key"], rung_of(r)): r for r in self.records()}


def top_records(records) -> dict[str, dict]:
    """Of records in journal order, each key's at its highest ``ok`` rung, else its last (:meth:`Journal.latest`)."""
    out: dict[str, dict] = {}
    for r in records:
        best = out.get(r["key"])
        if best is None or best.get("status") != STATUS_OK or (
                r.get("status") == STATUS_OK and rung_of(r) >= rung_of(best)):
            out[r["key"]] = r
    return out


_WARNED: set[tuple[str, int]] = set()  # (journal, line number): warned once per process, however often it is read


def _warn_torn(path: Path, number: int, line: str) -> None:
    where = (str(path.resolve()), number)
    if where in _WARNED:
        return
    _WARNED.add(where)
    log.warning(f"{path} line {number} is cut short or damaged (a write killed midway?): skipped, so that candidate "
                f"(at that rung) counts as not evaluated and is trained again ({line[:60]!r}...)")


def is_valid_psnr(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
