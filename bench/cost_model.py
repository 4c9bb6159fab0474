"""Cost model speed: analytic params/mult-adds per genome vs building the network and counting it.

Prints both times and their ratio, measured in one run, and writes them to bench/results/cost_model.{json,md}:
    python bench/cost_model.py [--genomes 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from falsr.space.cost import genome_cost
from falsr.space.genome import Genome
from falsr.space.network import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=200)
    parser.add_argument("--cells", type=int, default=7)
    args = parser.parse_args()
    report = Report("cost_model")
    rng = random.Random(0)
    genomes = [Genome.random(args.cells, rng) for _ in range(args.genomes)]

    start = time.perf_counter()
    for _ in range(10):
        analytic = [genome_cost(g) for g in genomes]
    t_model = (time.perf_counter() - start) / (10 * len(genomes))

    counted = genomes[: max(1, len(genomes) // 10)]  # building is slow: time a tenth of them
    start = time.perf_counter()
    for g in counted:
        net = build_network(g)
        sum(p.numel() for p in net.parameters())
        with torch.no_grad(), FlopCounterMode(display=False):
            net(torch.zeros(1, 1, 8, 8))  # a small input: we time the counting, not the convolutions
    t_count = (time.perf_counter() - start) / len(counted)

    report.print(
        f"genomes: {len(genomes)} x {args.cells} cells  (mean params "
        f"{sum(c.params for c in analytic) / len(analytic):,.0f})"
    )
    report.print(f"cost model:        {t_model * 1e6:9.1f} us per genome")
    report.print(f"build + count:     {t_count * 1e6:9.1f} us per genome")
    report.print(f"ratio (count / cost model): {t_count / t_model:,.0f}x")
    report.write(
        genomes=len(genomes), cost_model_us=t_model * 1e6, build_and_count_us=t_count * 1e6, ratio=t_count / t_model
    )


if __name__ == "__main__":
    main()
