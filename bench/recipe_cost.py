"""What a training recipe costs against the proxy's, timed alike: two recipes trained alternately on the same genomes.

The CPU seconds stored with the fidelity panel's runs (bench/results/runs.jsonl) were measured in different sittings
and under different loads (p300's seeds 0 and 1 with the machine to themselves, its seed 2 two jobs at a time), so
they cannot say whether one recipe costs more than another. This trains both recipes on the same panel genomes in
one process, alternating per genome (A B, then B A: a drift in the machine's speed falls on both), with a seed of its
own and a store of its own, and writes the CPU seconds of each run and the ratio of the totals
(bench/results/recipe_cost.json and .md). Run it as two processes, one per core, for a search's load (each
candidate beside another):

    python bench/recipe_cost.py --part 0/2 & python bench/recipe_cost.py --part 1/2; wait; python bench/recipe_cost.py --report
    python bench/recipe_cost.py --quick --out /tmp/cost.json       # 2 small genomes, q10 against qref (a test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _runs
import proxy_fidelity as pf

RESULTS = _runs.REPO / "bench" / "results"
# Six panel genomes over the cost range, FALSR-B among them (the cost of a run grows with the network).
GENOMES = ("init-9.7G", "child-23.8G", "child-42.9G", "FALSR-B", "child-94.9G", "init-147.2G")
QUICK_GENOMES = ("init-9.7G", "child-15.3G")
SEED = 100  # none of the panel's seeds: these runs are for timing only


def jobs(labels, names, recipes, seed):
    """(label, overrides) per genome and recipe, the recipes' order reversed on every other genome."""
    genomes = {label: genome for label, genome, _ in pf.PANEL}
    for i, label in enumerate(labels):
        for name in names if i % 2 == 0 else names[::-1]:
            yield f"{name}/s{seed}/{label}", pf.overrides(genomes[label], name, seed, recipes)


def report(labels, names, recipes, seed, store: Path) -> dict:
    done = _runs.load_store(store)
    genomes = {label: genome for label, genome, _ in pf.PANEL}
    rows = {}
    for label in labels:
        recs = [done.get(_runs.run_key(pf.overrides(genomes[label], n, seed, recipes))) for n in names]
        if all(r and r.get("status") == "ok" for r in recs):
            rows[label] = {n: r["cpu_seconds"] for n, r in zip(names, recs)}
    a, b = names
    result = {
        "recipes": list(names),
        "seed": seed,
        "genomes": rows,
        "n": len(rows),
        "threads": sorted({r.get("threads") for r in done.values()}),
    }
    if rows:
        result["ratio_of_totals"] = sum(r[b] for r in rows.values()) / sum(r[a] for r in rows.values())
        per = [r[b] / r[a] for r in rows.values()]
        result["ratio_per_genome"] = {"median": statistics.median(per), "min": min(per), "max": max(per)}
    return result


def markdown(result: dict, command: str, values: str) -> str:
    a, b = result["recipes"]
    lines = [
        f"# {command}",
        "",
        f"CPU seconds per run, `{a}` and `{b}` trained alternately on the same genomes (seed {result['seed']}, "
        f"one thread per process); the values are in {values}.",
        "",
        f"| genome | {a} | {b} | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for label, r in result["genomes"].items():
        lines.append(f"| {label} | {r[a]:.1f} | {r[b]:.1f} | {r[b] / r[a]:.2f} |")
    if result["n"]:
        p = result["ratio_per_genome"]
        lines += [
            "",
            f"`{b}` costs {result['ratio_of_totals']:.2f}x `{a}` over the {result['n']} genomes (per genome: median "
            f"{p['median']:.2f}, {p['min']:.2f}-{p['max']:.2f}).",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="p300,p1000_b8_p48", help="two recipes of bench/proxy_fidelity.py")
    parser.add_argument("--part", default="0/1", help="i/n: this process trains every n-th genome from the i-th")
    parser.add_argument("--report", action="store_true", help="the tables from the store; train nothing")
    parser.add_argument("--quick", action="store_true", help="2 small genomes, q10 against qref, a temporary store")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (default bench/results/recipe_cost.json)")
    args = parser.parse_args(argv)
    recipes = pf.QUICK_RECIPES if args.quick else pf.RECIPES
    names = ["q10", "qref"] if args.quick else args.recipes.split(",")
    if len(names) != 2 or any(n not in recipes for n in names):
        parser.error(f"--recipes {args.recipes}: give two of {', '.join(recipes)}")
    try:
        i, n = (int(x) for x in args.part.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        parser.error(f"--part {args.part}: give i/n with 0 <= i < n, e.g. 0/2")
    labels = QUICK_GENOMES if args.quick else GENOMES
    out = args.out or (RESULTS / "recipe_cost.json")
    store = out.with_name(out.stem + "_runs.jsonl")
    if args.quick and args.out is None:
        store = Path(tempfile.mkdtemp(prefix="falsr-cost-")) / "runs.jsonl"
        out = store.with_name("recipe_cost.json")
    _runs.set_threads(1)
    if not args.report:
        _runs.work_through(jobs(labels[i::n], names, recipes, SEED), store)
        if n > 1:
            return 0  # the parts' processes finish at different times: --report writes the tables
    result = report(labels, names, recipes, SEED, store)
    shown_out = args.out.resolve() if args.out else None
    if shown_out is not None and shown_out.is_relative_to(_runs.REPO):
        shown_out = shown_out.relative_to(_runs.REPO)
    command = (
        "python bench/recipe_cost.py"
        + (" --quick" if args.quick else "")
        + (f" --recipes {args.recipes}" if not args.quick and args.recipes != parser.get_default("recipes") else "")
        + (f" --out {shown_out}" if shown_out not in (None, Path("bench/results/recipe_cost.json")) else "")
    )
    text = markdown(result, command, out.name)
    print(text)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
