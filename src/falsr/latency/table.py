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

import itertools
import json
import sys
from pathlib import Path

import torch
from torch import nn

from falsr.latency import LatencyError, LatencySettings
from falsr.space.genome import (
    FEATURES,
    Cell,
    Genome,
    SearchSpace,
    active_space,
    connection_pairs,
    node_channels,
    num_connection_bits,
    parse_genome,
    using_space,
)


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


def fastest_genome(table: LatencyTable, space: SearchSpace | None = None) -> tuple[Genome, float]:
    """(the genome of `space` (None: the active one) with the smallest predicted latency, its milliseconds).

    Exact, without enumerating the space, and without assuming that a wider input is never faster: measured
    entries need not grow with the input width (noise, or a width the kernels handle better), so a connection
    bit, which adds a concatenation and widens its target's input, may make a network predicted faster. Given
    the cells, each target's sources are chosen independently (a target's time depends only on its own input
    width), so a dynamic programme over (the chain node's width, the set of widths the earlier nodes' subsets can
    add) is exact: that pair is all the future depends on. Every part the search space may need must be in the
    table (:func:`table_for`)."""
    space = space or active_space()
    entries = table.entries
    names = [_canonical(c, space).name for c in space.choices]

    def best_input(prev: int, extra: frozenset, cost) -> tuple[float, int]:
        """The cheapest (ms, added width) of a target whose chain input has `prev` channels."""
        return min((cost(prev + e) + (entries[f"concat/{prev + e}"] if e else 0.0), e) for e in sorted(extra))

    try:
        # state (chain node's channels, widths the earlier nodes can add) -> (ms so far, cells, added widths)
        states = {(FEATURES, frozenset({0})): (entries["head"], (), ())}
        for _ in range(space.n_cells):
            nxt: dict = {}
            for (prev, extra), (total, cells, added) in states.items():
                grown = frozenset(extra | {e + prev for e in extra})
                for index, (cell, name) in enumerate(zip(space.choices, names)):
                    ms, e = best_input(prev, extra, lambda w, name=name: entries[f"cell/{name}/{w}"])
                    key, value = (cell.channels, grown), (total + ms, cells + (index,), added + (e,))
                    if key not in nxt or value[0] < nxt[key][0]:
                        nxt[key] = value
            states = nxt
        finals = []
        for (prev, extra), (total, cells, added) in states.items():
            ms, e = best_input(prev, extra, lambda w: entries[f"up/{w}"])
            finals.append((total + ms, cells, added + (e,)))
    except KeyError as err:
        raise LatencyError(
            f"the latency table {table.path} lacks {err.args[0]}: run {profile_command(table.settings)}"
        ) from None
    ms, cells, added = min(finals, key=lambda f: f[0])
    channels = [FEATURES] + [space.choices[c].channels for c in cells]
    bits = {}
    for target, e in enumerate(added):  # the earlier nodes (before the chain node) whose widths sum to e
        sources = next(
            s
            for k in range(target + 1)
            for s in itertools.combinations(range(target), k)
            if sum(channels[i] for i in s) == e
        )
        bits.update({(i, target): 1 for i in sources})
    with using_space(space):
        genome = Genome(cells, tuple(bits.get(pair, 0) for pair in connection_pairs(space.n_cells)))
    return genome, ms


def cell_latencies(table: LatencyTable, n_cells: int, space: SearchSpace | None = None) -> tuple[float, ...]:
    """Each cell choice's latency weight: the predicted milliseconds of the network made of that cell repeated
    `n_cells` times with chain connections only.

    A cell's own time depends on its input width, which the previous cell sets; this representative is the one the
    mult-adds and params roulette wheels weight by (falsr.search.operators.cell_costs), so the three wheels rank a
    cell on the same network, and every part it needs is in any table complete for the space."""
    space = space or active_space()
    with using_space(space):
        zeros = (0,) * num_connection_bits(n_cells)
        return tuple(table.predict(Genome((c,) * n_cells, zeros)) for c in range(space.num_choices))


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
