"""The search journal: one JSON line per finished candidate (per candidate and rung with multi-fidelity
promotion: ``rung``, 0 for the first; a record without it, from a single-fidelity search, is rung 0), the
source of truth of a search.

Jobs append to it from their own processes (any Hydra launcher: in-process, joblib workers,
SLURM nodes sharing the sweep folder), so every append takes an exclusive `flock` and writes one
whole line, then fsyncs; a write that fails (a full disk) is cut off again, so the journal reads as before. A
line cut short by a kill is skipped when reading, with a one-line warning (once per process): its candidate (at that rung) is not journaled, so a resumed search trains it again.

A line is a :class:`JournalRecord`: the writers build one, the readers get one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
JOURNAL_NAME = "journal.jsonl"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_OVER_CAP = "over_mult_adds_cap"  # violates the mult-adds constraint: never trained
STATUS_UNDER_FLOOR = "under_mult_adds_floor"  # below constraints.min_mult_adds: never trained
STATUS_OVER_LATENCY = "over_latency_cap"  # predicted slower than constraints.max_latency_ms: never trained
UNTRAINED = (
    STATUS_OVER_CAP,
    STATUS_UNDER_FLOOR,
    STATUS_OVER_LATENCY,
)  # infeasible by their analytic cost, journaled with the reason


@dataclass(kw_only=True)
class JournalRecord:
    """One line of the journal: what every writer (the job's callback, the driver) writes and every reader reads.

    The JSON keys are the field names, in this order (a trained candidate's, as its job has always written it). An
    optional field that is None is left out of the line unless its key is in ``nulls`` (the writers that have
    always written ``"psnr": null`` and the like keep doing so, and a record read back is written with the keys it
    was read with). A key this version does not know is kept in ``extra`` and written back, so a journal of a newer
    version survives a rewrite by an older one."""

    key: str
    genome: str
    generation: int
    origin: str | None = None
    job_num: int | None = None
    run_dir: str | None = None
    parents: list[str] | None = None
    predicted_psnr: float | None = None
    # multi-fidelity promotion (falsr.search.fidelity): no rung is rung 0
    rung: int | None = None
    promoted_in: int | None = None
    resumed_from: str | None = None
    psnr: float | None = None  # what the search ranks by (search.estimator)
    ssim: float | None = None
    params: int | None = None
    mult_adds: int | None = None
    latency_ms: float | None = None  # an untrained record's with a latency cap, a front's with the objective
    train_seconds: float | None = None
    weights: str | None = None
    inherited_fraction: float | None = None
    inherited_from: Any | None = None
    inherited_steps: int | None = None
    curve: Any | None = None  # the held-out learning curve (falsr.training.curves)
    steps: int | None = None
    last_ckpt: str | None = None
    measured_psnr: float | None = None  # with search.estimator=extrapolated
    estimator: str | None = None
    status: str  # STATUS_*
    error: str | None = None
    time: float | None = None  # set by Journal.append
    nulls: frozenset = frozenset()  # optional keys written as null when None (else left out)
    extra: dict = field(default_factory=dict)  # keys this version does not know: kept, written back

    def to_json(self) -> dict:
        """The record as the JSON object of its journal line."""
        out = {}
        for f in fields(self):
            if f.name in ("nulls", "extra"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self.nulls or f.name in _REQUIRED:
                out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> JournalRecord:
        """A record from a journal line's object, of any version: a missing optional key (a learning curve, a
        rung, ... of an older journal) is None; an unknown key is kept in ``extra``. A missing key, genome,
        generation or status is a ValueError."""
        if missing := [k for k in _REQUIRED if k not in data]:
            raise ValueError(f"a journal record needs {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in _FIELDS}
        return cls(
            **known,
            nulls=frozenset(k for k, v in known.items() if v is None),
            extra={k: v for k, v in data.items() if k not in _FIELDS},
        )


_REQUIRED = ("key", "genome", "generation", "status")
_FIELDS = {f.name for f in fields(JournalRecord)} - {"nulls", "extra"}


def rung_of(record: JournalRecord) -> int:
    """A record's rung (0 where the journal predates multi-fidelity)."""
    return int(record.rung or 0)


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: JournalRecord) -> None:
        if record.time is None:
            record = replace(record, time=time.time())
        line = (json.dumps(record.to_json(), allow_nan=True) + "\n").encode()
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

    def records(self) -> list[JournalRecord]:
        """Every complete record, in order (torn or corrupt lines skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), start=1):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                if line.strip():
                    _warn_torn(self.path, number, line)
                continue
            if isinstance(data, dict) and "key" in data:
                try:
                    out.append(JournalRecord.from_json(data))
                except (TypeError, ValueError):  # no genome, generation or status, a mistyped field: damaged
                    _warn_torn(self.path, number, line)
        return out

    def latest(self) -> dict[str, JournalRecord]:
        """Every genome key's record at its highest rung that trained ``ok``, else its last record (with one
        fidelity: simply its last record). A failed promotion leaves the candidate at its rung below."""
        return top_records(self.records())

    def by_rung(self) -> dict[tuple[str, int], JournalRecord]:
        """The last record of every (genome key, rung)."""
        return {(r.key, rung_of(r)): r for r in self.records()}


def top_records(records) -> dict[str, JournalRecord]:
    """Of records in journal order, each key's at its highest ``ok`` rung, else its last (:meth:`Journal.latest`)."""
    out: dict[str, JournalRecord] = {}
    for r in records:
        best = out.get(r.key)
        if best is None or best.status != STATUS_OK or (r.status == STATUS_OK and rung_of(r) >= rung_of(best)):
            out[r.key] = r
    return out


_WARNED: set[tuple[str, int]] = set()  # (journal, line number): warned once per process, however often it is read


def _warn_torn(path: Path, number: int, line: str) -> None:
    where = (str(path.resolve()), number)
    if where in _WARNED:
        return
    _WARNED.add(where)
    log.warning(
        f"{path} line {number} is cut short or damaged (a write killed midway?): skipped, so that candidate "
        f"(at that rung) counts as not evaluated and is trained again ({line[:60]!r}...)"
    )


def is_valid_psnr(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
