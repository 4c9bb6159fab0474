"""Search efficiency: hypervolume reached by random search, plain NSGA-II and the hybrid controller.

Methods: uniformly random genomes; NSGA-II with random mutation only (p_exploration = p_random_mutation = 1);
the hybrid with default settings (exploration: random / roulette-wheel; exploitation: a whole controller
sample); and the hybrid with ``controller_keeps_cells=True`` (the controller draws only the connections of
the child's cells). Each method gets the same number of evaluated candidates (population x (generations + 1), all distinct),
over several seeds; the hypervolume of everything a run evaluated is measured in the documented box
(falsr.search.nsga.HypervolumeBox: PSNR 33..38.5 dB, mult-adds 1G..1000G and params 5K..5M on log scales,
reference point = the box's worst corner, hypervolume in [0, 1]).

    PYTHONPATH=src python bench/search_efficiency.py [--seeds 5] [--generations 10] [--population 64]

The PSNR objective is pluggable (``--objective module:function``, a function genome -> PSNR). Until the
training code lands, the default is a STAND-IN: ``proxy_psnr`` below, a deterministic formula of the
genome's structure and analytic cost, not a trained network's PSNR. Numbers from it say how the search
operators behave on a plausible landscape, nothing about real super-resolution quality.
"""

from __future__ import annotations

import argparse
import importlib
import math
import random
import statistics
import time
from typing import Callable

import torch

from falsr.cost import genome_cost
from falsr.genome import Genome
from falsr.search import (HypervolumeBox, SearchSettings, evaluate, hypervolume, run_search)
from falsr.search.generation import Offspring
from falsr.search.operators import roulette_mutation, roulette_wheel, cell_costs


def proxy_psnr(genome: Genome) -> float:
    """STAND-IN objective (not a trained PSNR): a deterministic guess of x2 Set5 PSNR from the structure.

    Saturating gains from capacity (log params), from receptive field (layers with k > 1 along the
    chain), from feature reuse (connections, those into the upsampler most), a bonus for in-cell skips on
    deep cells, a penalty for narrow 16-channel bottlenecks, and +-0.03 dB of per-genome "training noise"
    from the genome's hash. Range about 33.6..38 dB; costs come from the analytic model.
    """
    cost = genome_cost(genome)
    capacity = 1.0 / (1.0 + math.exp(-(math.log10(cost.params) - 5.3) / 0.3))
    receptive = 2
    for cell in genome.cell_specs:
        layers = 2 * cell.repeats if cell.op == "invbottleneck_e2" else cell.repeats
        receptive += (cell.kernel - 1) * layers + (2 * cell.repeats if cell.op == "invbottleneck_e2" else 0)
    n = genome.n_cells
    up_bits = [b for (i, j), b in zip(((i, j) for i in range(n) for j in range(i + 1, n + 1)), genome.connections)
               if j == n]
    reuse = 0.6 * sum(up_bits) / n + 0.4 * sum(genome.connections) / len(genome.connections)
    skips = sum(c.has_skip for c in genome.cell_specs) / n
    narrow = sum(c.channels == 16 for c in genome.cell_specs) / n
    noise = (int(genome.key[:8], 16) / 0xFFFFFFFF - 0.5) * 0.06
    return (33.6 + 3.0 * capacity + 0.9 * (1.0 - math.exp(-receptive / 12.0)) + 0.35 * reuse + 0.15 * skips
            - 0.3 * narrow + noise)


def random_search(psnr_of: Callable[[Genome], float], settings: SearchSettings, budget: int, seed: int):
    """Uniformly random distinct genomes (uniform cells and bits)."""
    rng, keys, batch = random.Random(seed), set(), []
    while len(batch) < budget:
        g = Genome.random(settings.n_cells, rng).canonical()
        if g.key not in keys:
            keys.add(g.key)
            batch.append(Offspring(g, "random"))
    return evaluate(batch, psnr_of, settings)


def hv_curve(history, box, checkpoints):
    return [hypervolume([i.objectives for i in history[:c]], box) for c in checkpoints]


def summarise(values):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd, min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--cells", type=int, default=7)
    parser.add_argument("--crowding", default="improved", choices=["standard", "improved"])
    parser.add_argument("--objective", default=None, help="module:function, a genome -> PSNR function")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.objective:
        module, name = args.objective.split(":")
        psnr_of, label = getattr(importlib.import_module(module), name), args.objective
    else:
        psnr_of, label = proxy_psnr, "STAND-IN proxy PSNR (deterministic formula of structure + cost, NOT trained)"
    settings = SearchSettings(n_cells=args.cells, population_size=args.population, crowding=args.crowding)
    plain = SearchSettings(n_cells=args.cells, population_size=args.population, crowding=args.crowding,
                           p_exploration=1.0, p_random_mutation=1.0)
    keeps_cells = SearchSettings(n_cells=args.cells, population_size=args.population, crowding=args.crowding,
                                 controller_keeps_cells=True)
    budget = args.population * (args.generations + 1)
    box = HypervolumeBox()
    checkpoints = sorted({args.population, budget // 4, budget // 2, budget})

    # Roulette-wheel mutation cost (the cached wheel makes it a handful of microseconds).
    roulette_wheel.cache_clear()
    cell_costs.cache_clear()
    rng = random.Random(0)
    g = Genome.random(args.cells, rng)
    start = time.perf_counter()
    roulette_mutation(g, rng, "mult_adds")
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(2000):
        roulette_mutation(g, rng, "params")
    warm = (time.perf_counter() - start) / 2000

    print(f"objective: {label}")
    print(f"budget: {budget} distinct evaluated candidates per run ({args.population} x {args.generations + 1} "
          f"generations), {args.cells} cells, crowding={args.crowding}, seeds 0..{args.seeds - 1}")
    print(f"hypervolume box: PSNR {box.psnr_min}..{box.psnr_max} dB, mult-adds {box.mult_adds_min:.0e}.."
          f"{box.mult_adds_max:.0e} (log), params {box.params_min:.0e}..{box.params_max:.0e} (log); ref = worst corner")
    print(f"roulette-wheel mutation: {warm * 1e6:.1f} us per call; first call incl. building the cached wheel "
          f"{cold * 1e3:.2f} ms")

    methods = {
        "random search": lambda seed: random_search(psnr_of, settings, budget, seed),
        "NSGA-II (random mutation only)": lambda seed: run_search(psnr_of, plain, args.generations, seed,
                                                                  use_controller=False)[1],
        "hybrid (EA + RL controller)": lambda seed: run_search(psnr_of, settings, args.generations, seed)[1],
        "hybrid, controller keeps cells": lambda seed: run_search(psnr_of, keeps_cells, args.generations, seed)[1],
    }
    results, curves, times = {}, {}, {}
    for name, run in methods.items():
        start = time.perf_counter()
        histories = [run(seed) for seed in range(args.seeds)]
        times[name] = (time.perf_counter() - start) / args.seeds
        assert all(len(h) == budget and len({i.genome.key for i in h}) == budget for h in histories)
        curves[name] = [hv_curve(h, box, checkpoints) for h in histories]
        results[name] = [c[-1] for c in curves[name]]

    print()
    print(f"{'method':34s} {'HV mean':>8s} {'sd':>7s} {'min':>7s} {'max':>7s}  {'vs random':>9s} {'vs NSGA-II':>10s}"
          f"  {'s/run':>6s}")
    base_random = statistics.fmean(results["random search"])
    base_nsga = statistics.fmean(results["NSGA-II (random mutation only)"])
    for name, values in results.items():
        mean, sd, lo, hi = summarise(values)
        print(f"{name:34s} {mean:8.4f} {sd:7.4f} {lo:7.4f} {hi:7.4f}  {mean / base_random:9.3f} "
              f"{mean / base_nsga:10.3f}  {times[name]:6.2f}")
    print()
    print("per-seed ratios (same seed):")
    for name in list(results)[1:]:
        ratios = [a / b for a, b in zip(results[name], results["random search"])]
        print(f"  {name:34s} / random: " + " ".join(f"{r:.3f}" for r in ratios))
    for name in list(results)[2:]:
        ratios = [a / b for a, b in zip(results[name], results["NSGA-II (random mutation only)"])]
        print(f"  {name:34s} / NSGA-II: " + " ".join(f"{r:.3f}" for r in ratios))
    print()
    print("mean hypervolume vs evaluated candidates:")
    print(f"  {'evaluations':34s} " + " ".join(f"{c:>7d}" for c in checkpoints))
    for name, per_seed in curves.items():
        means = [statistics.fmean(c[k] for c in per_seed) for k in range(len(checkpoints))]
        print(f"  {name:34s} " + " ".join(f"{m:7.4f}" for m in means))


if __name__ == "__main__":
    main()
