"""Read an offline W&B run back (its ``run-*.wandb`` file): the tests check what W&B recorded, not what we meant
to send.

The layout of W&B's transaction log (wandb/sdk/internal/datastore.py in wandb < 0.20, wandb-core since):
a 7-byte header (":W&B", magic 0xBEE1, version 0), then LevelDB log blocks of 32 KiB, each record chunk
with a 7-byte header (CRC-32 of type byte + data, length, type FULL/FIRST/MIDDLE/LAST).

``wandb.finish()`` returns before the file is complete: it tells wandb-core to close the run without waiting
(``ServiceConnection.inform_finish`` publishes), and wandb-core writes the log through a buffer it flushes when
it closes the run. Read at once, the file may hold the header alone (seen in CI under load: no ``run`` record,
``KeyError: 'group'``), so :func:`read_run` waits for the run's ``exit`` record, its last.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class Incomplete(ValueError):
    """The file ends inside a record, or before its header: wandb-core has not flushed it yet."""


def _chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    if len(data) < _HEADER:
        raise Incomplete(f"{len(data)} bytes, no header yet")
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"not a W&B transaction log (header {data[:_HEADER]!r})")
    pos = _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:  # zero padding (a preallocated or torn end)
            pos += left
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        if len(chunk) < length:
            raise Incomplete(f"the record at byte {pos} is cut short")
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            raise ValueError(f"bad checksum at byte {pos}")
        yield kind, chunk
        pos += _HEADER + length


def read_records(path: str | Path) -> list:
    """Every record of an offline ``run-*.wandb`` file, as it is now, as ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    records, parts = [], []
    for kind, chunk in _chunks(Path(path).read_bytes()):
        if kind == _FULL:
            parts = [chunk]
        elif kind == _FIRST:
            parts = [chunk]
            continue
        elif kind == _MIDDLE:
            parts.append(chunk)
            continue
        elif kind == _LAST:
            parts.append(chunk)
        record = pb.Record()
        record.ParseFromString(b"".join(parts))
        records.append(record)
        parts = []
    return records


def finished_records(path: str | Path, timeout: float = 120.0) -> list:
    """The records of a finished run: read again until the last is its ``exit`` record (module docstring)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_records(path)
            kinds = [r.WhichOneof("record_type") for r in records]
            if kinds and kinds[-1] == "exit":
                return records
            state = f"records so far: {kinds}"
        except Incomplete as err:
            state = str(err)
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no exit record after {timeout:.0f} s ({state}): did the run finish?")
        time.sleep(0.05)


def read_run(path: str | Path, timeout: float = 120.0) -> dict[str, Any]:
    """A finished offline run folder (or its ``.wandb`` file) as plain data: id, group, name, job type,
    config (last value of every key), summary (last value of every key) and history rows."""
    path = Path(path)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    run: dict[str, Any] = {"config": {}, "summary": {}, "history": []}
    for record in finished_records(path, timeout):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(
                {
                    "id": r.run_id,
                    "group": r.run_group,
                    "name": r.display_name,
                    "job_type": r.job_type,
                    "project": r.project,
                }
            )
            for item in r.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run["summary"], item, json.loads(item.value_json))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item, json.loads(item.value_json))
            run["history"].append(row)
    return run


def _set(out: dict, item, value) -> None:
    """An item's value at its key, or at its nested key (wandb-core flattens a dict value into its leaves)."""
    if item.key:
        out[item.key] = value
        return
    *parents, leaf = item.nested_key
    for part in parents:
        out = out.setdefault(part, {})
    out[leaf] = value
