"""Analytic cost model: params and mult-adds of a genome without building the network.

Every cell's cost is affine in its input channels (only its first layer sees them), so each cell
choice is tabulated once as a (per-input-channel, constant) pair and a genome costs a few dozen
additions. Mult-adds count convolution multiply-accumulates (biases and residual adds excluded, as
in the paper's Table I), for an LR input of `lr_size`: at x2 480x480 (the paper's convention, so Table I does not
move); at x3/x4 the LR input of a 1280x720 output (240x426, 180x320), the convention of recent lightweight SR
papers (CARN, IMDN): `default_lr_size(scale)`. Only the upsampler depends on the scale.
Pure Python (no torch): the search, its reports and `falsr.summary` cost genomes without building them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from falsr.space.genome import (
    DEFAULT_SCALE,
    FEATURES,
    HR_FEATURES,
    Cell,
    Genome,
    check_scale,
    connection_pairs,
    node_channels,
    parse_genome,
)

DEFAULT_LR_SIZE = (480, 480)  # the paper's x2 convention
OUTPUT_720P = (720, 1280)  # [height, width] of the output whose LR input x3/x4 costs are reported at


def default_lr_size(scale: int = DEFAULT_SCALE) -> tuple[int, int]:
    """The LR input size costs are reported at: 480x480 at x2 (the paper's), the LR of a 1280x720 output at x3/x4
    (floor, as those papers count: 240x426 at x3, 180x320 at x4)."""
    return DEFAULT_LR_SIZE if check_scale(scale) == DEFAULT_SCALE else lr_size_of_720p(scale)


def lr_size_of_720p(scale: int) -> tuple[int, int]:
    """[height, width] of the LR input of a 1280x720 output at `scale` (floor): 360x640 at x2, 180x320 at x4."""
    return OUTPUT_720P[0] // scale, OUTPUT_720P[1] // scale


@dataclass(frozen=True)
class CellCost:
    """params = p_in * cin + p_const; mult-adds per LR pixel = m_in * cin + m_const."""

    p_in: int
    p_const: int
    m_in: int
    m_const: int


@functools.cache
def cell_cost(cell: Cell) -> CellCost:
    f, k2, g, r = cell.channels, cell.kernel**2, cell.groups, cell.repeats
    if cell.op == "invbottleneck_e2":
        # 1x1 projection cin->f, then per block: kxk f->2f, depthwise 3x3 on 2f, kxk 2f->f (all with bias).
        block_w = 2 * k2 * f * 2 * f + 9 * 2 * f
        block_b = 2 * f + 2 * f + f
        return CellCost(f, f + r * (block_w + block_b), f, r * block_w)
    # First layer kxk cin->f (grouped), then repeats-1 layers kxk f->f (grouped).
    rest_w = (r - 1) * k2 * f * f // g
    return CellCost(k2 * f // g, f + rest_w + (r - 1) * f, k2 * f // g, rest_w)


HEAD_COST = CellCost(0, 9 * FEATURES + FEATURES, 0, 9 * FEATURES)  # 3x3 conv 1 -> 32


@functools.cache
def upsampler_cost(scale: int = DEFAULT_SCALE) -> CellCost:
    """3x3 conv cin -> 8s^2 at LR (+ a 1x1 conv 32 -> 8s^2 on the residual features when 8s^2 != 32, i.e. x3/x4),
    then a 3x3 conv 8 -> 1 at HR (s^2 HR pixels per LR pixel); falsr.space.network.Upsampler."""
    width = HR_FEATURES * check_scale(scale) ** 2
    skip_w = 0 if width == FEATURES else FEATURES * width
    skip_b = 0 if width == FEATURES else width
    out_w = 9 * HR_FEATURES
    return CellCost(9 * width, width + skip_w + skip_b + out_w + 1, 9 * width, skip_w + out_w * scale * scale)


@dataclass(frozen=True)
class Cost:
    params: int
    mult_adds: int


def _lr_pixels(lr_size) -> int:
    if isinstance(lr_size, int):
        return lr_size * lr_size
    h, w = lr_size
    return int(h) * int(w)


def part_costs(genome: Genome, scale: int = DEFAULT_SCALE) -> list[tuple[CellCost, int]]:
    """(cost table, input channels) of the head, every cell and the upsampler at `scale`, in network order."""
    n = genome.n_cells
    channels = node_channels(genome)
    cin = list(channels)  # the chain edge: node j always feeds target j
    for (i, j), bit in zip(connection_pairs(n), genome.connections):
        if bit:
            cin[j] += channels[i]
    return (
        [(HEAD_COST, 1)]
        + [(cell_cost(c), cin[j]) for j, c in enumerate(genome.cell_specs)]
        + [(upsampler_cost(scale), cin[n])]
    )


def genome_cost(genome, lr_size=DEFAULT_LR_SIZE, scale: int = DEFAULT_SCALE) -> Cost:
    """Params and mult-adds of a genome (a Genome or anything `parse_genome` accepts) at `scale`, for an LR input
    of `lr_size` (at x3/x4 pass `default_lr_size(scale)` for the reported convention)."""
    parts = part_costs(parse_genome(genome), scale)
    params = sum(cc.p_in * ch + cc.p_const for cc, ch in parts)
    macs = sum(cc.m_in * ch + cc.m_const for cc, ch in parts)
    return Cost(params=params, mult_adds=macs * _lr_pixels(lr_size))


def smallest_genome(space=None, objective: str = "mult_adds", scale: int = DEFAULT_SCALE) -> Genome:
    """The genome of `space` (None: the active one) with the fewest mult-adds (or params: objective="params") at
    `scale`.

    Exact, without enumerating the space: a connection bit only adds input channels and every cost is affine in
    them with non-negative slopes, so the smallest network has no connection bits; along the chain, a cell's
    cost depends only on the channels of the node before it, so a dynamic programme over those channels (one
    state per channel width) picks every cell.
    """
    from falsr.space.genome import active_space, num_connection_bits

    space = space or active_space()
    if objective not in ("mult_adds", "params"):
        raise ValueError(f"objective={objective!r}: use 'mult_adds' or 'params'")
    slope, const = ("m_in", "m_const") if objective == "mult_adds" else ("p_in", "p_const")
    head, up = HEAD_COST, upsampler_cost(scale)
    # best[cin] = (cost so far, cell indices so far) of the cheapest prefix whose last node has cin channels.
    best = {FEATURES: (getattr(head, slope) * 1 + getattr(head, const), ())}
    for _ in range(space.n_cells):
        nxt: dict[int, tuple[int, tuple[int, ...]]] = {}
        for cin, (total, cells) in best.items():
            for index, cell in enumerate(space.choices):
                cc = cell_cost(cell)
                value = total + getattr(cc, slope) * cin + getattr(cc, const)
                if cell.channels not in nxt or value < nxt[cell.channels][0]:
                    nxt[cell.channels] = (value, cells + (index,))
        best = nxt
    _, cells = min(best.items(), key=lambda item: item[1][0] + getattr(up, slope) * item[0] + getattr(up, const))[1]
    from falsr.space.genome import using_space

    with using_space(space):
        return Genome(cells, (0,) * num_connection_bits(space.n_cells))


def smallest_cost(space=None, lr_size=DEFAULT_LR_SIZE, scale: int = DEFAULT_SCALE) -> Cost:
    """The fewest mult-adds (at `lr_size`) and the fewest params any network of `space` (None: the active one)
    has at `scale`; the two minima may belong to different networks."""
    from falsr.space.genome import active_space, using_space

    space = space or active_space()
    with using_space(space):
        return Cost(
            params=genome_cost(smallest_genome(space, "params", scale), lr_size, scale).params,
            mult_adds=genome_cost(smallest_genome(space, "mult_adds", scale), lr_size, scale).mult_adds,
        )


def _register_resolver() -> None:
    """conf/search.yaml's ``search.settings.lr_size: ${falsr.cost_lr_size:${data.scale}}`` (falsr.cli imports this
    module, so every entry point and config test has it)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("falsr.cost_lr_size", lambda scale: list(default_lr_size(int(scale))), replace=True)


_register_resolver()
