"""Weight inheritance (Lamarckian): a child network starts from its parents' trained tensors where they
play the same role.

A network is cut into *units*, each a group of tensors with one role: the feature extractor (``head``),
each cell (``cells.<j>``) and the two convolutions of the upsampler (``upsampler.conv``, ``upsampler.out``).
A unit is inherited when a parent has a unit of the same *signature*: the same cell choice at the same
position with the same input width for a cell, the same input width for the upsampler's first conv (the
head and the upsampler's last conv never change). Parents are tried in the order given (the child's
primary parent first); every unit no parent can give keeps its fresh initialisation.

No maintained library does this: the mapping is FALSR's search space itself (which tensors a cell
choice makes, and what the connections do to its input width), so it lives here beside the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from falsr.errors import UserError
from falsr.space.genome import Genome, node_channels, parse_genome


def unit_signatures(genome: Genome) -> dict[str, tuple]:
    """Unit name (the state-dict prefix of its tensors) -> what must match for a parent's unit to be reused."""
    channels = node_channels(genome)
    width = [sum(channels[i] for i in genome.inputs_of(j)) for j in range(genome.n_cells + 1)]
    units: dict[str, tuple] = {"head": ("head",)}
    for j, choice in enumerate(genome.cells):
        units[f"cells.{j}"] = ("cell", int(choice), width[j])
    units["upsampler.conv"] = ("upsampler.conv", width[-1])
    units["upsampler.out"] = ("upsampler.out",)
    return units


def _unit_of(key: str, units) -> str | None:
    for unit in units:
        if key.startswith(unit + "."):
            return unit
    return None


@dataclass
class Inheritance:
    """What a network inherited: per unit the index of the source it came from, and the totals."""

    sources: list[str]
    units: dict[str, int] = field(default_factory=dict)
    inherited_params: int = 0
    total_params: int = 0
    inherited_steps: int = 0  # training steps the inherited tensors had already had (the most of any source used)

    @property
    def fraction(self) -> float:
        return self.inherited_params / self.total_params if self.total_params else 0.0

    @property
    def used_sources(self) -> list[str]:
        return [s for i, s in enumerate(self.sources) if i in set(self.units.values())]

    def to_dict(self) -> dict:
        return {**asdict(self), "fraction": self.fraction, "used_sources": self.used_sources}


def inherit_weights(net: torch.nn.Module, sources: Sequence[str | Path]) -> Inheritance:
    """Copy into ``net`` (a FALSRNet) every unit a source has with the same signature (module docstring).

    ``sources``: weights files that name their genome (falsr ``.pt`` from ``save_weights``, or a released
    ``.pb``), the primary parent first. A missing or genome-less file is a one-line error: a child that
    silently started fresh would be journaled as inherited.
    """
    from falsr.weights import network_keys, read_weights

    own = net.state_dict()
    signatures = unit_signatures(net.genome)
    by_unit: dict[str, list[str]] = {u: [] for u in signatures}
    for key in own:
        unit = _unit_of(key, signatures)
        if unit is None:
            raise RuntimeError(
                f"tensor {key} belongs to no inheritance unit: update falsr.weights.inherit.unit_signatures"
            )
        by_unit[unit].append(key)
    report = Inheritance([str(s) for s in sources], total_params=sum(v.numel() for v in own.values()))
    for index, source in enumerate(sources):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"cannot inherit weights from {path}: no such file")
        sd, genome, meta = read_weights(path)
        if genome is None:
            raise UserError(
                f"cannot inherit weights from {path}: it does not name its genome (use a .pt "
                "written by falsr.weights.save_weights, e.g. a search candidate's weights.pt)"
            )
        theirs = unit_signatures(parse_genome(genome))
        sd = network_keys(sd)
        used = False
        for unit, signature in signatures.items():
            if unit in report.units or theirs.get(unit) != signature:
                continue
            keys = by_unit[unit]
            if not all(k in sd and tuple(sd[k].shape) == tuple(own[k].shape) for k in keys):
                continue
            for k in keys:
                own[k] = sd[k].detach().to(own[k].dtype).clone()
                report.inherited_params += own[k].numel()
            report.units[unit] = index
            used = True
        if used:
            report.inherited_steps = max(report.inherited_steps, int(meta.get("lineage_steps", 0)))
    net.load_state_dict(own)
    return report


__all__ = ["Inheritance", "inherit_weights", "unit_signatures"]
