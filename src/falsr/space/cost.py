"""Analytic cost model: params and mult-adds of a genome without building the network.

Every cell's cost is affine in its input channels (only its first layer sees them), so each cell
choice is tabulated once as a (per-input-channel, constant) pair and a genome costs a few dozen
additions. Mult-adds count convolution multiply-accumulates (biases and residual adds excluded, as
in the paper's Table I), for an LR input of `lr_size` (default 480x480, the paper's convention).
Pure Python (no torch): the search, its reports and `falsr.summary` cost genomes without building them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from falsr.space.genome import FEATURES, SCALE, Cell, Genome, connection_pairs, node_channels, parse_genome

DEFAULT_LR_SIZE = (480, 480)


@dataclass(frozen=True)
class CellCost:
    """params = p_in * cin + p_const; mult-adds per LR pixel = m_in * cin + m_const."""

    p_in: int
    p_const: int
    m_in: int
    m_const: int


@functools.lru_cache(maxsize=None)
def cell_cost(cell: Cell) -> CellCost:
    f, k2, g, r = cell.channels, cell.kernel ** 2, cell.groups, cell.repeats
    if cell.op == "invbottleneck_e2":
        # 1x1 projection cin->f, then per block: kxk f->2f, depthwise 3x3 on 2f, kxk 2f->f (all with bias).
        block_w = 2 * k2 * f * 2 * f + 9 * 2 * f
        block_b = 2 * f + 2 * f + f
        return CellCost(f, f + r * (block_w + block_b), f, r * block_w)
    # First layer kxk cin->f (grouped), then repeats-1 layers kxk f->f (grouped).
    rest_w = (r - 1) * k2 * f * f // g
    return CellCost(k2 * f // g, f + rest_w + (r - 1) * f, k2 * f // g, rest_w)


HEAD_COST = CellCost(0, 9 * FEATURES + FEATURES, 0, 9 * FEATURES)  # 3x3 conv 1 -> 32
_UP_OUT_CH = FEATURES // (SCALE * SCALE)
# Upsampler: 3x3 conv cin -> 32 at LR, then 3x3 conv 8 -> 1 at HR (SCALE^2 LR pixels each).
UPSAMPLER_COST = CellCost(9 * FEATURES, FEATURES + 9 * _UP_OUT_CH + 1, 9 * FEATURES, 9 * _UP_OUT_CH * SCALE * SCALE)


@dataclass(frozen=True)
class Cost:
    params: int
    mult_adds: int


def _lr_pixels(lr_size) -> int:
    if isinstance(lr_size, int):
        return lr_size * lr_size
    h, w = lr_size
    return int(h) * int(w)


def part_costs(genome: Genome) -> list[tuple[CellCost, int]]:
    """(cost table, input channels) of the head, every cell and the upsampler, in network order."""
    n = genome.n_cells
    channels = node_channels(genome)
    cin = list(channels)  # the chain edge: node j always feeds target j
    for (i, j), bit in zip(connection_pairs(n), genome.connections):
        if bit:
            cin[j] += channels[i]
    return ([(HEAD_COST, 1)] + [(cell_cost(c), cin[j]) for j, c in enumerate(genome.cell_specs)]
            + [(UPSAMPLER_COST, cin[n])])


def genome_cost(genome, lr_size=DEFAULT_LR_SIZE) -> Cost:
    """Params and mult-adds of a genome (a Genome or anything `parse_genome` accepts)."""
    parts = part_costs(parse_genome(genome))
    params = sum(cc.p_in * ch + cc.p_const for cc, ch in parts)
    macs = sum(cc.m_in * ch + cc.m_const for cc, ch in parts)
    return Cost(params=params, mult_adds=macs * _lr_pixels(lr_size))
