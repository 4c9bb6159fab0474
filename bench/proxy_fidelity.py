"""How well does the search's proxy rank architectures?  Kendall tau of proxy against a 10x longer reference.

    python bench/proxy_fidelity.py                      # the full panel (hours on 2 cores; resumable)
    python bench/proxy_fidelity.py --recipes p100 --seeds 0   # a part of it (any order, several processes)
    python bench/proxy_fidelity.py --report             # the table from what is stored, no training
    python bench/proxy_fidelity.py --quick              # a reduced run in CI-sized time (temp store)

A fixed panel of 16 genomes (FALSR-A/B/C and candidates made by the search's own operators: single-cell
initial models and crossover + mutation children, 9.7G-235G mult-adds, 9 of them inside 50-100G) is
trained with each proxy recipe and with the reference recipe, seeds 0 and 1, every run validated on the
held-out T91 images and on Set5 and Set14. Every candidate of one seed shares the seed (common random
numbers: same patches in the same order, same initialisation stream), as in a search. Printed:

* tau(proxy, reference): a search sees one proxy seed, so this is the mean over proxy seeds of the tau
  between that seed's proxy PSNR and the reference PSNR (mean over reference seeds), on the whole
  panel and inside the band. "mixed seeds" is the same with every genome on an independently drawn
  seed: what a search without common random numbers would see.
* tau(seed, seed): proxy seed 0 against proxy seed 1 (repeatability), and the same for the reference
  (the reference's own noise: no proxy can rank better than this lets it show).

Runs are stored one line each in bench/results/runs.jsonl (committed: reruns skip them), their
checkpoints in outputs/bench-runs/ (git-ignored). The report goes to bench/results/proxy_fidelity.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _runs  # noqa: E402

# name, genome string, how it was made. Candidates were drawn with the search's operators as they were when
# the panel was fixed (before the DEAP toolbox loop): a 160-model initial population (one cell repeated,
# categorical connections; random.Random(2026) and random.Random(7)) and children = random mutation of a
# one-point crossover of two of them; picked by mult-adds bins. The strings are fixed, so the panel is too.
def zoo_genome(name: str) -> str:
    """The released genome of conf/model/<name>.yaml."""
    from omegaconf import OmegaConf

    from falsr.space.genome import config_genome

    return str(config_genome(OmegaConf.load(_runs.REPO / "conf" / "model" / f"{name}.yaml")))


PANEL = [
    ("FALSR-A", zoo_genome("falsr_a"), "released"),
    ("FALSR-B", zoo_genome("falsr_b"), "released"),
    ("FALSR-C", zoo_genome("falsr_c"), "released"),
    ("init-9.7G", "133.133.133.133.133.133.133-0010010_111010_01100_1000_000_10_0", "init"),
    ("child-15.3G", "126.109.109.109.109.109.109-1000101_110100_11011_1111_011_10_1", "child"),
    ("child-23.8G", "107.107.107.107.107.107.173-1011111_110000_11010_0111_001_01_0", "child"),
    ("init-35.3G", "127.127.127.127.127.127.127-1000001_110010_10010_1100_101_00_0", "init"),
    ("child-42.9G", "79.158.158.158.158.158.122-0011011_110101_10110_1011_100_01_0", "child"),
    ("init-61.7G", "40.40.40.40.40.40.40-1111111_111111_11111_1111_111_11_1", "init"),
    ("child-61.7G", "69.181.181.181.121.38.121-1110111_100101_10111_1100_011_11_1", "child"),
    ("init-65.4G", "82.82.82.82.82.82.82-0111010_010001_01010_0010_111_10_0", "init"),
    ("child-66.0G", "118.118.118.118.118.30.30-1101001_111111_11111_1111_111_11_1", "child"),
    ("child-79.6G", "34.61.34.32.97.32.32-0000000_000000_00000_0000_000_11_1", "child"),
    ("init-88.3G", "143.143.143.143.143.143.143-1011011_000000_10001_0100_101_01_0", "init"),
    ("child-94.9G", "46.46.181.40.40.57.40-1111111_111111_11111_1111_111_11_1", "child"),
    ("child-109.8G", "136.187.3.19.28.29.29-1101010_011011_11001_0100_110_11_1", "child"),
    # The extension to 32 (issue 21): drawn the same way with the search's operators of today (init_single_cell's
    # categorical connections, one-point crossover + random mutation) from random.Random(2027), picked by bins
    # (5-10G: 2, 10-50G: 4, 50-100G: 7, 100-250G: 3) so that 16 genomes lie inside the band.
    ("init-5.4G", "52.52.52.52.52.52.52-1011011_101110_11010_1100_110_10_1", "init"),
    ("child-9.7G", "121.121.121.121.121.4.4-1101111_110100_00110_1001_010_00_0", "child"),
    ("child-13.1G", "13.118.13.13.13.154.154-0000000_000000_00000_0000_000_00_0", "child"),
    ("init-15.0G", "56.56.56.56.56.56.56-0001101_100110_00011_0110_000_10_0", "init"),
    ("init-23.7G", "12.12.12.12.12.12.12-1111111_111111_11111_1111_111_11_1", "init"),
    ("child-23.8G-b", "7.7.7.7.7.7.127-1100101_110100_00110_1001_000_11_1", "child"),
    ("child-54.3G", "47.83.156.156.156.104.156-0001001_110010_11000_0000_100_10_1", "child"),
    ("init-58.3G", "131.131.131.131.131.131.131-0010100_100000_01011_1111_111_10_0", "init"),
    ("child-60.5G", "82.74.74.151.74.173.173-1111111_111111_11111_1111_111_11_1", "child"),
    ("init-61.7G-b", "20.20.20.20.20.20.20-0000000_000000_00000_0000_000_00_0", "init"),
    ("child-68.7G", "31.152.152.152.152.152.152-1010011_101100_10101_1010_011_01_0", "child"),
    ("init-69.3G", "152.152.152.152.152.152.152-0101111_101100_11101_1010_011_00_1", "init"),
    ("child-79.8G", "91.91.91.78.132.132.31-1001101_010101_00111_0000_010_11_0", "child"),
    ("init-147.2G", "30.30.30.30.30.30.30-1111111_111111_11111_1111_111_11_1", "init"),
    ("init-160.2G", "174.174.174.174.174.174.174-1000101_100110_00001_1001_101_00_1", "init"),
    ("child-190.9G", "191.20.110.20.20.20.20-0000000_000001_00000_0000_010_00_0", "child"),
]
FIRST16 = {label for label, _, _ in PANEL[:16]}  # the panel of issue 10 (its runs were stored before curves)
BAND = (50e9, 100e9)
VAL = "data.val_sets=[holdout,Set5,Set14]"


def recipe(steps: int, warmup: int, final_factor: float = 0.05, batch: int = 16, patch: int = 64,
           lr: float = 2e-3, torch_init: bool = True, curve: tuple[int, ...] = ()) -> list[str]:
    """budget=cpu's recipe (Adam, warm-up + cosine) with every knob explicit, validated once at the end.

    torch_init: PyTorch's default initialisation (model.init_std=null) instead of the paper's N(0, 0.02).
    curve: learning-curve points (held-out PSNR, bf16) during the run; they observe only, so they are not part of
    the run's key (bench/_runs.OBSERVING).
    """
    return ["budget=cpu", f"trainer.max_steps={steps}", f"data.samples_per_epoch={steps * batch}",
            f"data.batch_size={batch}", f"data.patch_size={patch}", f"optimizer.lr={lr}",
            f"scheduler.warmup_steps={warmup}", f"scheduler.final_factor={final_factor}",
            *(["model.init_std=null"] if torch_init else []),
            *([f"callbacks.learning_curve.val_steps=[{','.join(map(str, curve))}]"] if curve else []), VAL]


# Proxy candidates (the search's incomplete training) and the reference. p100_init002 is p100 with the paper's
# N(0, 0.02) init; p300 and p1000 show how fidelity grows with steps. p1000 is budget=reference (the showdown's
# recipe R), which was this bench's reference until a GPU could train a longer one: it repeated itself at tau
# 0.63 only. The reference is 10x p300's steps at twice the batch (20x its samples, 6x p1000's), bf16 on a GPU
# (the device script bench/gpu_fidelity.sh; 3000 steps on 2 cores would take about 10 CPU-hours per seed).
RECIPES = {
    "p100": recipe(100, 10),
    "p100_lr4e-3": recipe(100, 10, lr=4e-3),
    "p100_init002": recipe(100, 10, torch_init=False),
    "p300": recipe(300, 30, curve=(50, 100, 150, 200, 250)),
    "p1000": recipe(1000, 50, curve=(50, 100, 150, 200, 300, 400, 500, 700)),
    "reference": recipe(3000, 150, batch=32),
}
# e80: bench/search_efficiency.py's real objective (80 steps x batch 8 of 32px patches, fp32), to know how that
# bench's objective ranks. e80_inherit: e80 started from a parent's e80 weights (weight inheritance,
# falsr.weights.inherit): the parent is the genome with one cell redrawn (parent_genome), trained first with e80
# and the same seed; what inheritance does to a proxy's ranking.
# Validated on the held-out images only (as that bench's objective): 3 s per run instead of a Set14 pass.
RECIPES["e80"] = recipe(80, 8, batch=8, patch=32)[:-1] + ["trainer.precision=32-true", "data.val_sets=[holdout]"]
INHERIT = {"e80_inherit": "e80"}  # a recipe with inheritance -> the recipe the parent and the child train with
PROXIES = ("p100", "p100_lr4e-3", "p100_init002", "p300", "p1000", "e80", "e80_inherit")
QUICK_PANEL = [p for p in PANEL if p[0] in ("init-9.7G", "child-15.3G", "child-23.8G", "init-35.3G", "FALSR-B")]
QUICK_RECIPES = {"q10": recipe(10, 2, batch=8, patch=32), "qref": recipe(100, 10, batch=8, patch=32)}


def overrides(genome: str, recipe_name: str, seed: int, recipes=RECIPES) -> list[str]:
    return ["model=genome", f"model.genome={genome}", f"seed={seed}", *recipes[recipe_name]]


def parent_genome(label: str, genome: str) -> str:
    """The genome with one cell (drawn from the label) replaced by another choice: a random mutation's child."""
    from falsr.space.genome import NUM_CHOICES, Genome, parse_genome

    g = parse_genome(genome)
    rng = random.Random(f"parent-of-{label}")
    j = rng.randrange(g.n_cells)
    choice = rng.choice([c for c in range(NUM_CHOICES) if c != g.cells[j]])
    return str(Genome(tuple(g.cells[:j]) + (choice,) + tuple(g.cells[j + 1:]), tuple(g.connections)))


def parent_overrides(label: str, genome: str, recipe_name: str, seed: int, recipes=RECIPES) -> list[str]:
    return [*overrides(parent_genome(label, genome), INHERIT[recipe_name], seed, recipes), "save_weights=true"]


def run_overrides(label: str, genome: str, recipe_name: str, seed: int, recipes=RECIPES) -> list[str]:
    """A panel run's overrides; for an inheritance recipe the child's, reading its parent's weights (the path
    is relative to the repository, so run keys do not depend on where the clone is)."""
    if recipe_name not in INHERIT:
        return overrides(genome, recipe_name, seed, recipes)
    parent = _runs.run_key(parent_overrides(label, genome, recipe_name, seed, recipes))
    return [*overrides(genome, INHERIT[recipe_name], seed, recipes),
            f"model.inherit_from=['{_runs.RUNS_DIR.relative_to(_runs.REPO)}/{parent}/weights.pt']"]


def jobs(panel, recipe_names, seeds, recipes=RECIPES):
    for name in recipe_names:
        for seed in seeds:
            for label, genome, _ in panel:
                if name in INHERIT:  # the parent first (one process: run inheritance recipes in one process)
                    yield f"{name}-parent/s{seed}/{label}", parent_overrides(label, genome, name, seed, recipes)
                yield f"{name}/s{seed}/{label}", run_overrides(label, genome, name, seed, recipes)


def _score(rec: dict, target: str) -> float | None:
    val = rec.get("val") or {}
    if target == "test":  # mean of Set5 and Set14
        if "Set5" not in val or "Set14" not in val:
            return None
        return (val["Set5"]["psnr"] + val["Set14"]["psnr"]) / 2
    return val.get(target, {}).get("psnr")


def table(panel, recipes, proxies, reference, seeds, store, ref_seeds=None) -> str:
    """The Markdown report: tau per proxy and validation set; missing runs are listed, never guessed.

    The reference score of a genome is its mean over the reference seeds it has (ref_seeds, default seeds)."""
    ref_seeds = list(ref_seeds or seeds)
    from falsr.space.cost import genome_cost
    from falsr.space.genome import parse_genome

    done = _runs.load_store(store)
    macs = {label: genome_cost(parse_genome(g)).mult_adds for label, g, _ in panel}
    band = [label for label in macs if BAND[0] <= macs[label] <= BAND[1]]

    def scores(name, seed, target):
        out = {}
        for label, genome, _ in panel:
            rec = done.get(_runs.run_key(run_overrides(label, genome, name, seed, recipes)))
            if rec and rec.get("status") == "ok":
                out[label] = _score(rec, target)
        return {k: v for k, v in out.items() if v is not None}

    def tau(a: dict, b: dict, labels) -> tuple[float, int]:
        common = [k for k in labels if k in a and k in b]
        if len(common) < 3:
            return float("nan"), len(common)
        return float(kendalltau([a[k] for k in common], [b[k] for k in common]).statistic), len(common)

    def seeds_of(name):
        """The seeds (of `seeds`) this proxy has runs of: a seed added later to one proxy leaves the others as they are."""
        return [s for s in seeds if scores(name, s, "holdout") or scores(name, s, "test")] or list(seeds)

    def mean_over_seeds(name, target):
        per = [scores(name, s, target) for s in seeds_of(name)]
        labels = set.intersection(*(set(p) for p in per)) if per else set()
        return {k: float(np.mean([p[k] for p in per])) for k in labels}

    complete = [s for s in ref_seeds if len(scores(reference, s, "test")) == len(panel)]
    ref_seeds = complete or ref_seeds[:1]  # a seed still being trained would weigh some genomes more than others

    def reference_mean(target):
        per = [scores(reference, s, target) for s in ref_seeds]
        labels = set.intersection(*(set(p) for p in per))
        return {k: float(np.mean([p[k] for p in per])) for k in labels}

    lines = []
    ref_test = reference_mean("test")
    ref_hold = reference_mean("holdout")
    runs = [(n, s) for n in proxies for s in seeds_of(n)] + [(reference, s) for s in ref_seeds]
    missing = [f"{n}/s{s}/{label}" for n, s in runs for label, g, _ in panel
               if not (r := done.get(_runs.run_key(run_overrides(label, g, n, s, recipes)))) or r.get("status") != "ok"]
    lines.append(f"Panel: {len(panel)} genomes, {len(band)} inside {BAND[0] / 1e9:.0f}-{BAND[1] / 1e9:.0f}G; "
                 f"proxy seeds {list(seeds)} (those each proxy has); reference `{reference}` (seeds {ref_seeds}, scored by their mean): "
                 f"{' '.join(recipes[reference][:-1])}.")
    lines.append("")
    lines.append("Proxies: " + "; ".join(
        f"`{n}`: {' '.join(recipes[n][1:-1])}" if n in recipes else f"`{n}`: `{INHERIT[n]}` inheriting from a parent"
        for n in proxies) + ".")
    lines.append("")
    lines.append("| proxy | proxy validated on | tau vs ref (panel) | tau vs ref (band) | mixed seeds (panel / band) "
                 "| tau seed vs seed (panel / band) | proxy s / run |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    rng = random.Random(0)
    for name in proxies:
        for target in ("holdout", "Set5", "test"):
            per_seed = [scores(name, s, target) for s in seeds_of(name)]
            if not any(per_seed):  # e.g. a proxy validated on the held-out images only
                continue
            t_all = [tau(p, ref_test, macs) for p in per_seed]
            t_band = [tau(p, ref_test, band) for p in per_seed]
            mixed_all, mixed_band = [], []
            labels = [k for k in macs if all(k in p for p in per_seed)]
            for _ in range(200):
                mixed = {k: per_seed[rng.randrange(len(per_seed))][k] for k in labels}
                mixed_all.append(tau(mixed, ref_test, macs)[0])
                mixed_band.append(tau(mixed, ref_test, band)[0])
            seed_pairs = list(itertools.combinations(per_seed, 2))  # repeatability: mean over the seed pairs
            ss_all = (float(np.mean([tau(a, b, macs)[0] for a, b in seed_pairs])) if seed_pairs else float("nan"), 0)
            ss_band = (float(np.mean([tau(a, b, band)[0] for a, b in seed_pairs])) if seed_pairs else float("nan"), 0)
            keys = {_runs.run_key(run_overrides(label, g, name, s, recipes)) for s in seeds_of(name)
                    for label, g, _ in panel}
            secs = [done[k]["wall_seconds"] for k in keys if k in done and done[k].get("status") == "ok"]
            lines.append(
                f"| {name} | {target if target != 'test' else 'Set5+Set14'} | {_mean(t_all)} (n={t_all[0][1]}) | "
                f"{_mean(t_band)} (n={t_band[0][1]}) | {np.nanmean(mixed_all):.3f} / {np.nanmean(mixed_band):.3f} | "
                f"{ss_all[0]:.3f} / {ss_band[0]:.3f} | {np.mean(secs) if secs else float('nan'):.0f} |")
            if target == "holdout" and len(per_seed) > 1:  # a proxy that trains every candidate once per seed
                averaged = mean_over_seeds(name, "holdout")
                k = len(seeds_of(name))
                lines.append(f"| {name}, mean of {k} seeds ({k}x cost) | holdout | "
                             f"{tau(averaged, ref_test, macs)[0]:.3f} (n={tau(averaged, ref_test, macs)[1]}) | "
                             f"{tau(averaged, ref_test, band)[0]:.3f} (n={tau(averaged, ref_test, band)[1]}) | - | - | - |")
    params = {label: genome_cost(parse_genome(g)).params for label, g, _ in panel}
    for what, values in (("mult-adds", macs), ("params", params)):  # zero-cost baselines: bigger is better
        lines.append(f"| {what} (no training) | - | {tau(values, ref_test, macs)[0]:.3f} (n={tau(values, ref_test, macs)[1]}) "
                     f"| {tau(values, ref_test, band)[0]:.3f} (n={tau(values, ref_test, band)[1]}) | - | - | 0 |")
    pairs = list(itertools.combinations(ref_seeds, 2))
    ref_by_seed = {s: scores(reference, s, "test") for s in ref_seeds}
    r_ss = [tau(ref_by_seed[a], ref_by_seed[b], macs)[0] for a, b in pairs]
    r_ss_band = [tau(ref_by_seed[a], ref_by_seed[b], band)[0] for a, b in pairs]
    lines.append("")
    lines.append(f"Reference against itself (Set5+Set14, mean over the {len(pairs)} seed pairs of {ref_seeds}): tau "
                 f"{np.nanmean(r_ss) if pairs else float('nan'):.3f} on the panel, "
                 f"{np.nanmean(r_ss_band) if pairs else float('nan'):.3f} in the band; reference on held-out vs on "
                 f"Set5+Set14 (seed mean): tau {tau(ref_hold, ref_test, macs)[0]:.3f}.")
    lines.append("")
    lines.append("| genome | mult-adds | " + " | ".join(f"{n} s{s}" for n, s in runs) + " |  (Set5+Set14 mean PSNR, dB)")
    lines.append("| --- | --- | " + " | ".join("---" for _ in runs) + " |")
    for label, _, _ in panel:
        cells = []
        for n, s in runs:
            v = scores(n, s, "test").get(label)
            cells.append(f"{v:.2f}" if v is not None else "-")
        lines.append(f"| {label} | {macs[label] / 1e9:.1f}G | " + " | ".join(cells) + " |")
    if missing:
        lines.append("")
        lines.append(f"Missing runs ({len(missing)}): " + ", ".join(missing[:12]) + (" ..." if len(missing) > 12 else ""))
    return "\n".join(lines) + "\n"


def _mean(taus) -> str:
    vals = [t for t, _ in taus]
    return f"{np.nanmean(vals):.3f}" if any(np.isfinite(vals)) else "nan"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="p100,reference,p100_lr4e-3,p100_init002,p300",
                        help=f"which recipes to train, in order (of {', '.join(RECIPES)})")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    parser.add_argument("--report", action="store_true", help="print the table from the store; train nothing")
    parser.add_argument("--quick", action="store_true", help="5 small genomes, 10-step proxy vs 100-step reference")
    parser.add_argument("--no-wait", action="store_true", help="leave runs held by other processes to them")
    parser.add_argument("--reference", default="reference", choices=[*RECIPES],
                        help="the recipe the report ranks against (p1000 where the GPU reference is not trained)")
    parser.add_argument("--ref-seeds", default="0,1,2", help="the reference seeds the report averages (those stored)")
    parser.add_argument("--store", type=Path, default=None,
                        help="the run store (default: the committed one; --quick: a temporary one)")
    parser.add_argument("--workers", type=int, default=1,
                        help="training processes working through the list together (a GPU: one per CPU core)")
    parser.add_argument("--train-only", action="store_true", help="train, print no report (a worker)")
    parser.add_argument("--only", choices=("all", "first16", "added"), default="all",
                        help="train these genomes of the panel: the first 16 (issue 10's) or the 16 added since")
    parser.add_argument("--need-curves", action="store_true",
                        help="train again the stored runs that have no learning curve (stored before curves were)")
    args = parser.parse_args(argv)
    os.chdir(_runs.REPO)  # inheritance recipes name their parents' weights relative to the repository
    seeds = [int(s) for s in args.seeds.split(",")]
    _runs.set_threads(args.threads)
    if args.quick:
        store = args.store.resolve() if args.store else Path(tempfile.mkdtemp(prefix="falsr-fidelity-")) / "runs.jsonl"
        panel, recipes, proxies, reference = QUICK_PANEL, QUICK_RECIPES, ("q10",), "qref"
        names = ["q10", "qref"]
    else:
        store, panel, recipes, reference = (args.store or _runs.STORE).resolve(), PANEL, RECIPES, args.reference
        proxies = tuple(p for p in PROXIES if p != reference)
        names = args.recipes.split(",")
        unknown = [n for n in names if n not in RECIPES and n not in INHERIT]
        if unknown:
            parser.error(f"unknown recipe {unknown[0]!r}: choose from {', '.join([*RECIPES, *INHERIT])}")
    if not args.report and args.workers > 1:  # several processes share the list through the store's run locks
        argv = list(argv if argv is not None else sys.argv[1:])  # the options given last win: --store, --workers=1
        workers = [subprocess.Popen([sys.executable, __file__, *argv, "--store", str(store), "--no-wait",
                                     "--train-only", "--workers=1"]) for _ in range(args.workers)]

        def stop(*_):  # a timeout's SIGTERM: stop the workers too, not only this process
            for w in workers:
                w.terminate()
            sys.exit(143)

        signal.signal(signal.SIGTERM, stop)
        failed = sum(w.wait() != 0 for w in workers)
        if failed:
            print(f"{failed} of {args.workers} workers failed (their output is above)", file=sys.stderr)
    elif not args.report:
        part = [p for p in panel if args.only == "all" or (p[0] in FIRST16) == (args.only == "first16")]
        _runs.work_through(jobs(part, names, seeds, recipes), store, wait=not args.no_wait,
                           need=("curve",) if args.need_curves else ())
    if args.train_only:
        return 0
    ref_seeds = seeds if args.quick else [int(s) for s in args.ref_seeds.split(",")]
    report = table(panel, recipes, [p for p in proxies], reference, seeds, store, ref_seeds)
    print(report)
    if not args.quick and store == _runs.STORE.resolve():
        out = _runs.REPO / "bench" / "results" / "proxy_fidelity.md"
        out.write_text("# bench/proxy_fidelity.py\n\n" + report)
        print(f"written {out.relative_to(_runs.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
