"""Search efficiency: hypervolume reached by the search algorithms of conf/search/ at an equal budget.

Every method is a search config composed exactly as ``python search.py +search=<name>`` composes it (its
settings and its DEAP toolbox), run in-process on the same loop (falsr.search.generation.run_search):

* ``random``: ``+search=random``, uniformly random genomes (the baseline);
* ``nsga2``: ``+search=nsga2`` with random mutation only and no controller (plain NSGA-II);
* ``hybrid``: ``+search=nsga2`` as it is (the paper's hybrid: Eq. 4, exploration / controller exploitation);
* ``keeps``: the hybrid with ``controller_keeps_cells=true`` (the controller draws only the connections);
* ``nsga3``: ``+search=nsga3`` (DEAP's selNSGA3 survival, same variation as the hybrid);
* ``spea2``: ``+search=spea2`` (DEAP's selSPEA2 survival, same variation as the hybrid);
* any other ``conf/search/<name>.yaml`` by its name.

Each method gets the same number of evaluated candidates (population x (generations + 1), all distinct),
over several seeds; the hypervolume of everything a run evaluated is measured in the documented box
(falsr.search.settings.HypervolumeBox with PSNR from 33 dB: 33..38.5 dB, mult-adds 1G..1000G and params 5K..5M on log scales,
reference point = the box's worst corner, hypervolume in [0, 1]).

    PYTHONPATH=src python bench/search_efficiency.py [--seeds 5] [--generations 10] [--population 64]
    python bench/search_efficiency.py --objective real --population 8 --generations 2 --seeds 3 \
        --methods random,nsga2,hybrid
    python bench/search_efficiency.py --objective real --cpu-budget 300 --population 8 --seeds 3 \
        --methods random,inherit,nsga2,predictor,inherit_predictor,hybrid [--part 0/2] [--report]

``--cpu-budget S`` compares the methods at equal CPU time instead of an equal number of candidates (every
run goes on until it has spent S CPU seconds of training and search; bench/_timed_efficiency.py), with
the methods ``inherit`` (the hybrid with ``search.inherit=true``), ``predictor`` (the hybrid with
``search.settings.prescreen_factor=4``) and ``inherit_predictor`` (both); finished runs go to
``bench/results/search_efficiency_real.jsonl`` (resumable, ``--part i/n`` splits them over processes) and
the report to ``bench/results/search_efficiency_real.md``.

The PSNR objective is pluggable (``--objective``):

* ``proxy`` (default): a STAND-IN, ``proxy_psnr`` below, a deterministic formula of the genome's
  structure and analytic cost, not a trained network's PSNR. Numbers from it say how the search operators
  behave on a plausible landscape, nothing about real super-resolution quality. Box PSNR 33..38.5 dB.
* ``real``: ``bench/_objectives.py:short_training_psnr``, a short REAL training of each candidate
  (falsr.training.train.train composed from conf/ with Hydra: 80 steps x batch 8 of 32px T91 patches, fp32, fixed
  seed, PSNR on the held-out training images; cached per genome key, so NSGA-II and the hybrid, which share
  their initial population for a seed, train it once). Such short training ends far below
  bicubic, outside the 33..38.5 dB box, so the PSNR side of the box is by default pooled: the lowest and
  highest PSNR any method reached on any seed in this invocation (one box for all methods; it changes if
  the set of methods changes). ``--psnr-range LO HI`` fixes it instead.
* ``ranked``: the same trainings with the search's former evaluator (``budget=search_p300``, 300 steps, the
  held-out curve extrapolated to 2000 steps: bench/_objectives.py); ``real`` ranks at chance. With
  ``--cpu-budget`` its runs go to ``bench/results/search_efficiency_ranked.jsonl``.
* ``final``: the search's evaluator now (``budget=search``: 1000 steps of batch 8 on 48px patches, its final
  held-out PSNR), the one that ranks like longer training best (docs/evaluator.md); runs go to
  ``bench/results/search_efficiency_final.jsonl``. ``--objective-overrides`` appends training overrides.
* ``module:function``: any genome -> PSNR function (pooled PSNR range by default, as for ``real``).

The results are what the run prints (README, Search efficiency); none are recorded here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from falsr.search import HypervolumeBox, hypervolume, run_search
from falsr.search.generation import new_search
from falsr.search.operators import GeneList, cell_costs, mut_roulette, roulette_wheel, wheel_pressure
from falsr.space.cost import genome_cost
from falsr.space.genome import Genome, connection_pairs


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
    up_bits = [b for (_, j), b in zip(connection_pairs(n), genome.connections) if j == n]
    reuse = 0.6 * sum(up_bits) / n + 0.4 * sum(genome.connections) / len(genome.connections)
    skips = sum(c.has_skip for c in genome.cell_specs) / n
    narrow = sum(c.channels == 16 for c in genome.cell_specs) / n
    noise = (int(genome.key[:8], 16) / 0xFFFFFFFF - 0.5) * 0.06
    return (
        33.6
        + 3.0 * capacity
        + 0.9 * (1.0 - math.exp(-receptive / 12.0))
        + 0.35 * reuse
        + 0.15 * skips
        - 0.3 * narrow
        + noise
    )


NSGA = "NSGA-II (random mutation only)"
RANDOM = "random search"
# method -> (label, search config, overrides of its `search` node)
# Every method but the predictor ones trains what its operators propose (prescreen_factor=1), whatever the
# search configs' default, so that each row measures one idea.
NO_PREDICTOR = "search.settings.prescreen_factor=1"
METHODS = {
    "random": (RANDOM, "random", [NO_PREDICTOR]),
    "nsga2": (
        NSGA,
        "nsga2",
        [
            "search.use_controller=false",
            "search.settings.p_exploration=1.0",
            "search.settings.p_random_mutation=1.0",
            "search.settings.p_roulette_mult_adds=0.0",
            NO_PREDICTOR,
        ],
    ),
    "hybrid": ("hybrid (EA + RL controller)", "nsga2", [NO_PREDICTOR]),
    "keeps": ("hybrid, controller keeps cells", "nsga2", ["search.settings.controller_keeps_cells=true", NO_PREDICTOR]),
    "nsga3": ("NSGA-III (hybrid variation)", "nsga3", [NO_PREDICTOR]),
    "spea2": ("SPEA2 (hybrid variation)", "spea2", [NO_PREDICTOR]),
    "inherit": ("hybrid + weight inheritance", "nsga2", ["search.inherit=true", NO_PREDICTOR]),
    "predictor": ("hybrid + predictor pre-screening x4", "nsga2", ["search.settings.prescreen_factor=4"]),
    "inherit_predictor": (
        "hybrid + inheritance + predictor x4",
        "nsga2",
        ["search.inherit=true", "search.settings.prescreen_factor=4"],
    ),
}


def compose_method(name: str, overrides: list[str]):
    """(label, SearchSettings, toolbox config, use_controller) of a method, composed like search.py composes it."""
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR, use_space_of
    from falsr.search.hydra_glue import search_settings, toolbox_config

    label, config, extra = METHODS.get(name, (name, name, []))
    if not (CONF_DIR / "search" / f"{config}.yaml").is_file():
        raise SystemExit(f"error: unknown method {name!r}: use one of {', '.join(METHODS)} or a conf/search/ name")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+search={config}", *extra, *overrides])
    use_space_of(cfg)  # the search runs in this process: its genomes are read in the config's space
    return (
        label,
        search_settings(cfg.search),
        toolbox_config(cfg.search),
        bool(cfg.search.use_controller),
        bool(cfg.search.get("inherit", False)),
    )


class _Timed:
    """Counts the objective's calls and the seconds spent in them."""

    def __init__(self, func: Callable[[Genome], float]):
        self.func, self.calls, self.seconds = func, 0, 0.0

    def __call__(self, genome: Genome) -> float:
        start = time.perf_counter()
        try:
            return self.func(genome)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - start


def _ratio(a: float, b: float | None) -> str:
    if b is None:
        return "-"
    return f"{a / b:.3f}" if b > 0 else ("inf" if a > 0 else "nan")


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
    parser.add_argument(
        "--objective",
        default="proxy",
        help="proxy (STAND-IN formula, default), real (80-step real training, bench/_objectives.py), ranked "
        "(the search's former evaluator: budget=search_p300, curve extrapolated), final (the search's evaluator: "
        "budget=search, final PSNR) or module:function (a genome -> PSNR function)",
    )
    parser.add_argument(
        "--objective-overrides",
        nargs="*",
        default=[],
        help="training overrides appended to real/ranked/final trainings (named in the objective, so in the runs' id)",
    )
    parser.add_argument(
        "--methods",
        default="random,nsga2,hybrid,nsga3,spea2",
        help="comma-separated methods: random, nsga2, hybrid, keeps, nsga3, spea2 or a conf/search/ name",
    )
    parser.add_argument(
        "--psnr-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="PSNR side of the hypervolume box (default: 33..38.5 dB for proxy, pooled otherwise)",
    )
    parser.add_argument(
        "--cpu-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="equal CPU time instead of equal candidates: every run goes on until it has spent this "
        "many CPU seconds (training + search), with --objective real (bench/_timed_efficiency.py)",
    )
    parser.add_argument(
        "--search-overrides",
        nargs="*",
        default=[],
        help="overrides composed into every method (e.g. search.settings.redraw_out_of_bounds=false, as the "
        "stored --objective real runs ran)",
    )
    parser.add_argument("--store", type=Path, default=None, help="--cpu-budget: finished runs, one JSON line each")
    parser.add_argument("--part", default="0/1", help="--cpu-budget: run only part i of n of the (method, seed) runs")
    parser.add_argument("--report", action="store_true", help="--cpu-budget: the table from --store, train nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.cpu_budget is not None or args.report:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _timed_efficiency

        return _timed_efficiency.main(args, compose_method)

    objective_module = None
    if args.objective in (None, "proxy"):
        psnr_of, label = proxy_psnr, "STAND-IN proxy PSNR (deterministic formula of structure + cost, NOT trained)"
    elif args.objective in ("real", "ranked", "final"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        objective_module = importlib.import_module("_objectives")
        objective_module.use(args.objective, args.objective_overrides)
        psnr_of, label = objective_module.short_training_psnr, objective_module.describe()
    else:
        module, name = args.objective.split(":")
        objective_module = importlib.import_module(module)
        psnr_of, label = getattr(objective_module, name), args.objective
    timed_psnr = _Timed(psnr_of)
    budget = args.population * (args.generations + 1)
    checkpoints = sorted({args.population, budget // 4, budget // 2, budget})
    common = [
        f"space.n_cells={args.cells}",
        f"search.settings.population_size={args.population}",
        f"search.settings.crowding={args.crowding}",
        *args.search_overrides,
    ]
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    composed = {m: compose_method(m, common) for m in chosen}

    # Roulette-wheel mutation: its cost (the cached wheel makes it a handful of microseconds) and the
    # selection pressure it really gives.
    pressure = composed[chosen[0]][1].roulette_pressure
    search = new_search(composed[chosen[0]][1], seed=0, use_controller=False)
    roulette_wheel.cache_clear()
    cell_costs.cache_clear()
    g = GeneList.from_genome(Genome.random(args.cells, random.Random(0)))
    start = time.perf_counter()
    mut_roulette(GeneList(g), search=search, metric="mult_adds")
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(2000):
        mut_roulette(GeneList(g), search=search, metric="params")
    warm = (time.perf_counter() - start) / 2000

    print(f"objective: {label}")
    print(
        f"budget: {budget} distinct evaluated candidates per run ({args.population} x {args.generations + 1} "
        f"generations), {args.cells} cells, crowding={args.crowding}, seeds 0..{args.seeds - 1}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"roulette-wheel mutation: {warm * 1e6:.1f} us per call; first call incl. building the cached wheel "
        f"{cold * 1e3:.2f} ms"
    )
    for metric in ("mult_adds", "params"):
        mass, ratio = wheel_pressure(args.cells, metric, pressure)
        print(
            f"roulette wheel by {metric} (pressure {pressure}): the cheapest 10% of the 192 cells get {mass:.1%} "
            f"of the draws, {ratio:.2f}x a uniform draw"
        )
    for m, (name, _settings, toolbox, use_controller, _) in composed.items():
        print(
            f"  {m}: {name}: "
            + ", ".join(f"{k}={v['_target_'].rsplit('.', 1)[-1]}" for k, v in toolbox.items())
            + f", controller {'on' if use_controller else 'off'}"
        )
    sys.stdout.flush()

    def runner(settings, toolbox, use_controller):
        return lambda seed: run_search(timed_psnr, settings, args.generations, seed, use_controller, toolbox)[1]

    if any(c[4] for c in composed.values()):
        raise SystemExit(
            "error: weight inheritance needs trained weights: run it with --cpu-budget and --objective real"
        )
    methods = {
        name: runner(settings, toolbox, use_controller)
        for name, settings, toolbox, use_controller, _ in composed.values()
    }

    stats = getattr(objective_module, "STATS", None)
    histories, times, trained = {}, {}, {}
    bench_start = time.perf_counter()
    for name, run in methods.items():
        start, before = time.perf_counter(), (stats.trained if stats is not None else None)
        histories[name] = []
        for seed in range(args.seeds):
            histories[name].append(run(seed))
            if stats is not None:
                print(
                    f"  {name}, seed {seed}: done at {time.perf_counter() - bench_start:.0f} s; " + stats.line(),
                    flush=True,
                )
        times[name] = (time.perf_counter() - start) / args.seeds
        trained[name] = stats.trained - before if stats is not None else None
        assert all(len(h) == budget and len({i.genome.key for i in h}) == budget for h in histories[name])
    total = time.perf_counter() - bench_start

    box = HypervolumeBox(psnr_min=33.0)  # the box this bench has always reported in (the search's default is 20)
    if args.psnr_range is not None:
        box = dataclasses.replace(box, psnr_min=args.psnr_range[0], psnr_max=args.psnr_range[1])
        how = "given"
    elif psnr_of is not proxy_psnr:
        floor = getattr(objective_module, "FAILED_PSNR", -math.inf)
        values = [i.objectives[0] for hs in histories.values() for h in hs for i in h if i.objectives[0] > floor]
        box = dataclasses.replace(box, psnr_min=min(values), psnr_max=max(values))
        how = "pooled: lowest..highest PSNR reached by any method, any seed"
    else:
        how = "fixed"
    curves = {name: [hv_curve(h, box, checkpoints) for h in hs] for name, hs in histories.items()}
    results = {name: [c[-1] for c in per_seed] for name, per_seed in curves.items()}

    print()
    print(f"objective calls: {timed_psnr.calls} in {timed_psnr.seconds:.1f} s; whole bench {total:.1f} s")
    if stats is not None:
        print(f"objective cost: {stats.line()}")
    print(
        f"hypervolume box: PSNR {box.psnr_min:.3f}..{box.psnr_max:.3f} dB ({how}), mult-adds "
        f"{box.mult_adds_min:.0e}..{box.mult_adds_max:.0e} (log), params {box.params_min:.0e}..{box.params_max:.0e} "
        f"(log); ref = worst corner"
    )
    print()
    base_random = statistics.fmean(results[RANDOM]) if RANDOM in results else None
    base_nsga = statistics.fmean(results[NSGA]) if NSGA in results else None
    print(
        f"{'method':34s} {'HV mean':>8s} {'sd':>7s} {'min':>7s} {'max':>7s}  {'vs random':>9s} {'vs NSGA-II':>10s}"
        f"  {'s/run':>6s}" + (f"  {'trained':>7s}" if stats is not None else "")
    )
    for name, values in results.items():
        mean, sd, lo, hi = summarise(values)
        print(
            f"{name:34s} {mean:8.4f} {sd:7.4f} {lo:7.4f} {hi:7.4f}  {_ratio(mean, base_random):>9s} "
            f"{_ratio(mean, base_nsga):>10s}  {times[name]:6.2f}"
            + (f"  {trained[name]:7d}" if stats is not None else "")
        )
    if stats is not None:
        print("(s/run: wall time per seed, trained: candidates newly trained by the method, the rest cache hits)")
    print()
    print("per-seed ratios (same seed):")
    for base in (RANDOM, NSGA):
        if base not in results:
            continue
        for name in results:
            if name == base or (base == NSGA and name == RANDOM):
                continue
            ratios = [_ratio(a, b) for a, b in zip(results[name], results[base])]
            print(f"  {name:34s} / {'random' if base == RANDOM else 'NSGA-II'}: " + " ".join(ratios))
    print()
    print("mean hypervolume vs evaluated candidates:")
    print(f"  {'evaluations':34s} " + " ".join(f"{c:>7d}" for c in checkpoints))
    for name, per_seed in curves.items():
        means = [statistics.fmean(c[k] for c in per_seed) for k in range(len(checkpoints))]
        print(f"  {name:34s} " + " ".join(f"{m:7.4f}" for m in means))
    print()
    print("best PSNR reached (dB), per seed:")
    for name, hs in histories.items():
        print(f"  {name:34s} " + " ".join(f"{max(i.objectives[0] for i in h):7.3f}" for h in hs))


if __name__ == "__main__":
    main()
