"""Print a genome's architecture and costs: `python -m falsr.summary model=falsr_a`.

The last line is one JSON object (params, mult_adds, ...) for scripts.
"""

from __future__ import annotations

import json

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from falsr.cli import check_conf_dir, user_errors
from falsr.errors import UserError
from falsr.space.cost import default_lr_size, genome_cost, part_costs


def _lr_size(value) -> tuple[int, int]:
    try:
        if isinstance(value, int):
            size = (value, value)
        else:
            h, w = value
            size = (int(h), int(w))
    except (TypeError, ValueError):
        raise UserError(f"bad lr_size {value!r}: give an int (square) or [height, width]") from None
    if min(size) < 1:
        raise UserError(f"bad lr_size {value!r}: sizes must be positive")
    return size


def describe(net, lr_size: tuple[int, int]) -> list[str]:
    """Readable lines: one per cell with its inputs, channels, params and mult-adds (from falsr.space.cost)."""
    g = net.genome
    pixels = lr_size[0] * lr_size[1]
    head, *cells, upsampler = part_costs(g, net.scale)

    def costs(part) -> str:
        cc, cin = part
        return f"{cc.p_in * cin + cc.p_const:>9,} {(cc.m_in * cin + cc.m_const) * pixels / 1e9:>9.2f}G"

    lines = [
        f"{net.name}  genome {g}  ({g.n_cells} cells, LR input {lr_size[0]}x{lr_size[1]}, x{net.scale})",
        f"{'target':<10} {'cell':<34} {'inputs':<22} {'ch in->out':<11} {'params':>9} {'mult-adds':>10}",
        f"{'head':<10} {'conv3x3 1->32 + ReLU':<34} {'Y':<22} {'1->32':<11} {costs(head)}",
    ]
    for j, (cell, part) in enumerate(zip(g.cell_specs, cells)):
        lines.append(
            f"{'cell ' + str(j):<10} {cell.name:<34} {str(g.inputs_of(j)):<22} "
            f"{f'{part[1]}->{cell.channels}':<11} {costs(part)}"
        )
    lines.append(
        f"{'upsampler':<10} {f'conv3x3+ReLU, +node 0, d2s x{net.scale}, conv3x3':<34} {str(g.inputs_of(g.n_cells)):<22} "
        f"{f'{upsampler[1]}->1':<11} {costs(upsampler)}"
    )
    return lines


def latency(genome, node) -> dict:
    """Measured end-to-end and table-predicted latency (the table's missing parts measured once and kept)."""
    from falsr.latency import LatencySettings
    from falsr.latency.measure import measure_network, warn_if_noisy
    from falsr.latency.table import LatencyTable, genome_parts

    settings = LatencySettings.from_dict(dict(node))
    table = LatencyTable(settings)
    table.profile(genome_parts(genome), progress=False)
    predicted, measured = table.predict(genome), measure_network(genome, settings)
    warn_if_noisy([measured], settings, str(genome))
    print(
        f"latency ({settings.describe()}, batch 1): measured {measured.ms:.2f} ms (spread {measured.spread:.0%}), "
        f"predicted {predicted:.2f} ms by the table ({table.path})"
    )
    return {
        "latency_ms": measured.ms,
        "latency_spread": measured.spread,
        "latency_predicted_ms": predicted,
        "latency_settings": settings.to_dict(),
    }


@hydra.main(version_base="1.3", config_path=check_conf_dir(), config_name="summary")
@user_errors
def main(cfg: DictConfig) -> dict:
    net = instantiate(cfg.model)
    lr_size = default_lr_size(net.scale) if cfg.lr_size is None else _lr_size(cfg.lr_size)
    cost = genome_cost(net.genome, lr_size, net.scale)
    built = sum(p.numel() for p in net.parameters())
    assert built == cost.params, f"cost model ({cost.params}) disagrees with the built network ({built})"
    for line in describe(net, lr_size):
        print(line)
    result = {
        "model": net.name,
        "genome": str(net.genome),
        "n_cells": net.genome.n_cells,
        "params": cost.params,
        "mult_adds": cost.mult_adds,
        "lr_size": list(lr_size),
    }
    print(f"total: {cost.params:,} params, {cost.mult_adds / 1e9:.2f}G mult-adds")
    if (cfg.get("latency") or {}).get("show"):
        result.update(
            latency(net.genome, {"scale": net.scale, **{k: v for k, v in cfg.latency.items() if k != "show"}})
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
