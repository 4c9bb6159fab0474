"""JournalRecord, the one type of a journal line: every committed journal loads, and a line reads and writes back
with the keys it had (old journals, and new writers' explicit nulls, unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falsr.search.journal import STATUS_FAILED, STATUS_OK, Journal, JournalRecord, rung_of

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted((REPO / "bench" / "results").rglob("journal.jsonl"))


def test_there_are_committed_journals():
    assert COMMITTED, "bench/results holds the recorded searches' journals"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_journal_loads_and_writes_back_its_keys(path):
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [JournalRecord.from_json(data) for data in lines]
    assert [r.to_json() for r in records] == lines  # values and key sets (order aside) as they were
    assert all(not r.extra for r in records)  # every key of the recorded journals is a field
    assert len(Journal(path).records()) == len(lines)
    assert all(r.status in (STATUS_OK, STATUS_FAILED) or r.psnr is None for r in records)


def test_an_old_line_reads_missing_keys_as_none_and_keeps_unknown_ones():
    old = {"key": "k", "genome": "1.2-10_1", "generation": 3, "status": "ok", "psnr": 30.0, "added_later": [1, 2]}
    r = JournalRecord.from_json(old)
    assert r.curve is None and r.rung is None and rung_of(r) == 0 and r.parents is None
    assert r.extra == {"added_later": [1, 2]} and r.to_json() == old
    with pytest.raises(ValueError, match="needs genome"):
        JournalRecord.from_json({"key": "k", "generation": 0, "status": "ok"})


def test_nulls_are_written_only_where_asked(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(
        JournalRecord(
            key="a",
            genome="1.2-10_1",
            generation=0,
            status="over_mult_adds_cap",
            mult_adds=5e9,
            params=1,
            error="over",
            nulls=frozenset({"psnr", "ssim"}),
        )
    )
    line = json.loads(journal.path.read_text())
    assert set(line) == {
        "key",
        "genome",
        "generation",
        "status",
        "psnr",
        "ssim",
        "params",
        "mult_adds",
        "error",
        "time",
    }
    assert line["psnr"] is None and isinstance(line["time"], float)
    assert journal.records()[0].to_json() == line
