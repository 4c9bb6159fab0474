"""The per-cell latency lookup table (the FBNet / ProxylessNAS idea): each part measured once, a network summed.

A network is the head (3x3 conv 1->32 + ReLU), its cells, the concatenations its connections make, and the
upsampler. Only a cell's first layer sees its input width, and every part runs at the LR size, so a part's time
depends on the part and its input width alone: the table holds one entry per (cell choice, input width), per
concatenated width and per upsampler input width the search space can produce, under one
:class:`~falsr.latency.LatencySettings` (its fingerprint names the file). A network's predicted latency is the
sum of its parts' entries: a dictionary look-up per part, so the search ranks thousands of candidates in
milliseconds and never measures inside a training job.

The file is JSON lines, a header then one entry per part, appended and flushed as each is measured, so
``profile`` resumes after a kill where it stopped (a torn last line is measured again).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from falsr.latency import LatencyError, LatencySettings
from falsr.space.genome import FEATURES, Cell, SearchSpace, active_space, node_channels, parse_genome


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        from falsr.space.network import conv

        self.conv = conv(1, FEATURES, 3)

    def forward(self, y):
        return torch.relu(self.conv(y))


class _Cat(nn.Module):
    def forward(self, a, b):
        return torch.cat([a, b], dim=1)


def genome_parts(genome) -> list[str]:
    """The table keys a genome's network is made of, in network order."""
    g = parse_genome(genome)
    channels = node_channels(g)
    keys = ["head"]
    for j in range(g.n_cells + 1):
        inputs = g.inputs_of(j)
        cin = sum(channels[i] for i in inputs)
        if len(inputs) > 1:
            keys.append(f"concat/{cin}")
        keys.append(f"cell/{_canonical(g.cell_specs[j]).name}/{cin}" if j < g.n_cells else f"up/{cin}")
    return keys


def _canonical(cell: Cell, space: SearchSpace | None = None) -> Cell:
    """One entry for cells that build the same network (a one-repeat cell's residual flag does nothing)."""
    canonical = cell.canonical()
    return canonical if canonical in (space or active_space()).index else cell


def _input_widths(space: SearchSpace) -> tuple[set[int], set[int], set[int]]:
    """(cell input widths, concatenated widths, upsampler input widths) any genome of `space` can have."""
    cells, concats, ups = set(), set(), set()
    extra = {0}  # widths the connection bits can add from nodes before the chain node
    for j in range(space.n_cells + 1):
        chain = {FEATURES} if j == 0 else set(space.channels)
        widths = {c + e for c in chain for e in extra}
        (cells if j < space.n_cells else ups).update(widths)
        concats.update(c + e for c in chain for e in extra if e)
        # node j becomes a possible extra input of every later target
        extra = extra | {e + c for e in extra for c in chain}
    return cells, concats, ups


def space_keys(space: SearchSpace | None = None) -> list[str]:
    """Every table key a genome of `space` (None: the active one) may need, cheapest parts first."""
    space = space or active_space()
    cells, concats, ups = _input_widths(space)
    unique = sorted({_canonical(c, space) for c in space.choices}, key=space.index.get)
    keys = ["head"] + [f"concat/{w}" for w in sorted(concats)] + [f"up/{w}" for w in sorted(ups)]
    keys += [f"cell/{c.name}/{w}" for w in sorted(cells) for c in unique]
    return keys


def part(key: str, settings: LatencySettings) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """The module of a table key and the input shapes it is timed on."""
    from falsr.space.network import Upsampler, build_cell

    h, w = settings.lr_size
    kind, *rest = key.split("/")
    if kind == "head":
        return _Head(), [(1, 1, h, w)]
    if kind == "concat":
        total = int(rest[0])
        first = min(FEATURES, total - 1)
        return _Cat(), [(1, first, h, w), (1, total - first, h, w)]
    if kind == "up":
        return Upsampler(int(rest[0]), settings.scale), [(1, int(rest[0]), h, w), (1, FEATURES, h, w)]
    if kind == "cell":
        return build_cell(Cell.from_name(rest[0]), int(rest[1])), [(1, int(rest[1]), h, w)]
    raise LatencyError(f"bad latency table key {key!r}")


def profile_command(settings: LatencySettings) -> str:
    h, w = settings.lr_size
    return (
        f"python -m falsr.latency profile backend={settings.backend} precision={settings.precision} "
        f"threads={settings.threads} scale={settings.scale} lr_size=[{h},{w}]"
    )


class LatencyTable:
    """The entries of one settings' table file: key -> median milliseconds."""

    def __init__(self, settings: LatencySettings):
        self.settings = settings
        self.path = settings.table_path()
        self.entries: dict[str, float] = {}
        self.spreads: dict[str, float] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text().splitlines()
        header = _loads(lines[0]) if lines else None
        if header is None or header.get("fingerprint") != self.settings.fingerprint():
            raise LatencyError(
                f"{self.path} was measured under other settings or another device: delete it and "
                f"run {profile_command(self.settings)}"
            )
        for line in lines[1:]:
            entry = _loads(line)
            if entry is not None and "key" in entry:  # a torn last line (a kill mid-write) is measured again
                self.entries[entry["key"]] = float(entry["ms"])
                self.spreads[entry["key"]] = float(entry.get("spread", 0.0))

    def missing(self, keys) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def predict(self, genome) -> float:
        """The network's predicted latency in milliseconds: the sum of its parts' entries."""
        keys = genome_parts(genome)
        if missing := self.missing(keys):
            raise LatencyError(
                f"the latency table {self.path} lacks {len(missing)} part(s) of {genome} (e.g. "
                f"{missing[0]}): run {profile_command(self.settings)}"
            )
        return sum(self.entries[k] for k in keys)

    def breakdown(self, genome) -> list[tuple[str, float]]:
        return [(k, self.entries.get(k, float("nan"))) for k in genome_parts(genome)]

    def profile(self, keys, progress: bool = True) -> int:
        """Measure every key not yet in the table, appending each as it is measured; returns how many."""
        from tqdm import tqdm

        from falsr.latency.measure import measure, warn_if_noisy

        todo = self.missing(dict.fromkeys(keys))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.is_file() or self.path.stat().st_size == 0
        timings = []
        with open(self.path, "a") as fh:
            if fresh:
                fh.write(
                    json.dumps({"fingerprint": self.settings.fingerprint(), "settings": self.settings.to_dict()}) + "\n"
                )
                fh.flush()
            elif not self.path.read_text().endswith("\n"):
                fh.write("\n")  # after a torn line: start the next entry on its own line
            for key in tqdm(
                todo,
                desc=f"latency table ({self.settings.describe()})",
                unit="part",
                disable=not progress,
                file=sys.stderr,
            ):
                module, shapes = part(key, self.settings)
                t = measure(module, shapes, self.settings)
                timings.append(t)
                self.entries[key], self.spreads[key] = t.ms, t.spread
                fh.write(json.dumps({"key": key, "ms": t.ms, "spread": t.spread, "runs": t.runs}) + "\n")
                fh.flush()
        warn_if_noisy(timings, self.settings, f"{len(timings)} table entries")
        return len(todo)


def _loads(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


_LOADED: dict[tuple, LatencyTable] = {}


def load_table(settings: LatencySettings, keys=None) -> LatencyTable:
    """The table of `settings` (cached per file and modification time); with `keys`, every one must be in it
    (a one-line error says how to build it), so a search never measures inside a job."""
    path = settings.table_path()
    stamp = (str(path), path.stat().st_mtime_ns if path.is_file() else None)
    table = _LOADED.get(stamp) or _LOADED.setdefault(stamp, LatencyTable(settings))
    if keys is not None and (missing := table.missing(keys)):
        where = "does not exist" if not path.is_file() else f"lacks {len(missing)} of the {len(keys)} parts"
        raise LatencyError(f"the latency table {path} {where}: run {profile_command(settings)} (resumable)")
    return table


def table_for(settings: LatencySettings, space: SearchSpace | None = None) -> LatencyTable:
    """The complete table of `settings` for `space` (None: the active one), or a one-line error."""
    return load_table(settings, space_keys(space))


def path_of(settings: LatencySettings) -> Path:
    return settings.table_path()
