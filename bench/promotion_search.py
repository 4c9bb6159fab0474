"""Multi-fidelity promotion in a real search against the single-fidelity search, at equal training steps (issue 21's
last goal): in a band, does successive halving pick a model whose reference PSNR is at least as good as the one the
single-fidelity estimator picks?

    python bench/promotion_search.py --band b            # the promoted search, then the reference runs of both picks
    python bench/promotion_search.py --band b --report   # the report from what is stored; trains nothing
    python bench/promotion_search.py --band b --variant final --search search.estimator=final \
        --judge-precision 32-true                         # a second promoted search, stored beside the first

    python bench/promotion_search.py --band b --generations 0 --rungs 500,1000,2000 --eta 2 --seeds 0,1,2 \
        --variant search --single-search budget=search search.estimator=final \
        --search budget=search search.estimator=final scheduler.warmup_steps=100 --judge-precision bf16-mixed
        # both searches with budget=search (the single one run here too), promotion on its family at 2000 steps;
        # add --baseline bench/results/showdown2/search_b to judge the old budget's search's pick alike

1. Single fidelity: the showdown's band search (`--single`, bench/results/showdown2/search_<band>/: experiment=
   showdown_<band>, budget=search, every candidate 300 steps, ranked by its extrapolated curve) read up to its
   generation `--generations`: the search as it stood then (a search is deterministic in its seed, so this is what
   `search.generations=<G>` gives, at no cost). With `--single-search OVERRIDES`, the bench runs (or resumes) it
   itself, the band's experiment with those overrides and `search.generations=--generations`, stored as
   `--results`/search_<name>_single/.
2. Promotion: the same experiment, seed and generations with `search.fidelity.rungs=--rungs`, `search.fidelity.eta=
   --eta` and `trainer.max_steps=<last rung>`, run (or resumed) by search.py. Costs are compared in training steps
   (a promoted record trains from its rung below): rungs [100, 300, 700] with eta 2 over 32 candidates train about the
   32 x 300 steps of the single-fidelity search. The journals' training seconds are reported beside.
3. Each search's pick inside the band: single, the best search score (journal psnr); promoted, the best score at the
   highest rung reached (as the search compares them: falsr.search.nsga.tiered_psnr).
4. The judge: bench/proxy_fidelity.py's reference, `--reference` (p2000) held-out PSNR, mean over `--seeds` (0, 1),
   trained through bench/_runs.py's store (a panel genome's runs are already there).

Writes `--results`/<band>.json and promotion_search.md (all bands stored).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from falsr.space.genome import Genome

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _runs
import showdown
from proxy_fidelity import QUICK_RECIPES, RECIPES, _score
from proxy_fidelity import overrides as recipe_overrides
from showdown2 import BANDS

REPO = _runs.REPO
BOOK = {**RECIPES, **QUICK_RECIPES}
RESULTS = REPO / "bench" / "results" / "promotion_search"


def log(msg: str) -> None:
    print(f"[promotion_search {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_journal(path: Path, generations: int | None = None) -> list[dict]:
    """A search's journal records (up to generation `generations`: the search as it stood then)."""
    lines = path.read_text().splitlines() if path.is_file() else []
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if generations is None or r["generation"] <= generations]


def _ok(r: dict) -> bool:
    return r.get("status") == "ok" and r.get("psnr") is not None and math.isfinite(r["psnr"])


def in_band(r: dict, bounds: tuple[float | None, float | None]) -> bool:
    lo, hi = bounds
    return (lo is None or r["mult_adds"] >= lo) and (hi is None or r["mult_adds"] <= hi)


def trained_steps(r: dict, rungs: list[int], budget_steps: int) -> int:
    """The steps a journal record trained: its rung's steps less those of the rung it continued from."""
    if not rungs:
        return budget_steps
    rung = int(r.get("rung") or 0)
    return rungs[rung] - (rungs[rung - 1] if rung and r.get("resumed_from") else 0)


def summarise(records: list[dict], rungs: list[int], budget_steps: int, bounds) -> dict:
    """A search's cost and pick: the best score at the highest rung among the band's trained candidates."""
    ok = [r for r in records if _ok(r) and in_band(r, bounds)]
    pick = max(ok, key=lambda r: (int(r.get("rung") or 0), r["psnr"])) if ok else None
    return {
        "candidates": len({r["key"] for r in records}),
        "records": len(records),
        "steps": sum(trained_steps(r, rungs, budget_steps) for r in records if r.get("status") == "ok"),
        "train_seconds": round(sum(r.get("train_seconds") or 0.0 for r in records), 1),
        "per_rung": [sum(int(r.get("rung") or 0) == i for r in records) for i in range(max(len(rungs), 1))],
        "pick": None
        if pick is None
        else {
            "key": pick["key"],
            "genome": pick["genome"],
            "mult_adds": pick["mult_adds"],
            "params": pick["params"],
            "rung": int(pick.get("rung") or 0),
            "score": pick["psnr"],
        },
    }


def experiment_steps(experiment: str, overrides: list[str] | tuple[str, ...] = ()) -> int:
    """The training steps of every candidate of the single-fidelity search: its experiment with `overrides` (its stored
    config holds only the search node; tests/test_showdown2.py checks that the experiment composes to what ran)."""
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "search",
            overrides=["+search=nsga2", f"experiment={experiment}", "paths.output_dir=/tmp/unused", *overrides],
        )
    return int(cfg.trainer.max_steps)


def judge(
    genome: str, reference: str, seeds: list[int], store: Path, train: bool, precision: str | None = None
) -> dict:
    """The reference's held-out PSNR of a genome per seed (trained when missing and `train`). With `precision`
    (a Lightning precision, e.g. "32-true"), each seed's run is the stored one where it trained in that precision
    (`trainer.precision=auto` trains in fp32 on one machine, bf16 on another: its key does not say which), else
    one trained with `trainer.precision` set: the picks of two searches are judged alike on any machine."""
    tag = Genome.from_string(genome).key[:8]
    stored = _runs.load_store(store)
    jobs = []
    for s in seeds:
        overrides = recipe_overrides(genome, reference, s, BOOK)
        rec = stored.get(_runs.run_key(overrides))
        if precision is not None and not (rec and rec.get("precision") == precision):
            overrides = [*overrides, f"trainer.precision={precision}"]
        jobs.append((f"promotion_search/{reference}/s{s}/{tag}", overrides))
    done = _runs.work_through(jobs, store) if train else stored
    per_seed, precisions = {}, set()
    for seed, (_, overrides) in zip(seeds, jobs, strict=True):
        rec = done.get(_runs.run_key(overrides))
        if rec and rec.get("status") == "ok" and _score(rec, "holdout") is not None:
            per_seed[str(seed)] = _score(rec, "holdout")
            precisions.add(str(rec.get("precision")))
    return {
        "per_seed": per_seed,
        "mean": statistics.fmean(per_seed.values()) if len(per_seed) == len(seeds) else None,
        # trainer.precision=auto trains in bf16 on one machine, fp32 on another: the run key does not say which
        "precision": sorted(precisions),
    }


def render(results: dict[str, dict]) -> str:
    lines = [
        "# Multi-fidelity promotion in a real search",
        "",
        "Written by `bench/promotion_search.py` from the runs it stored; the command of each band is below.",
        "",
    ]
    for _, res in sorted(results.items()):
        single, promoted = res["single"], res["promoted"]
        lo, hi = res["bounds"]
        lines += [
            f"## Band {res['band'].upper()} ({_g(lo)}-{_g(hi)} mult-adds)"
            + (f": {res['variant']} ({' '.join(res['search_overrides'])})" if res.get("variant") else ""),
            "",
            f"`{res['command']}`",
            "",
            f"Judge: {res['reference']} held-out PSNR, mean of seeds {', '.join(map(str, res['seeds']))} "
            "(bench/proxy_fidelity.py's reference), trained in "
            + " / ".join(sorted({p for s in (single, promoted) for p in (s.get("judged") or {}).get("precision", [])}))
            + ". The training seconds are each search's own journal, measured on the machine it ran on: the costs "
            "are compared in training steps.",
            "",
            "| search | candidates | records (per rung) | training steps | training s (journal) | pick | "
            "pick's mult-adds | pick's rung | pick's search score | reference per seed | reference mean |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        rows = [("single fidelity", single), ("promotion", promoted)]
        if res.get("baseline"):
            rows.append(("single fidelity, stored search", res["baseline"]))
        for name, s in rows:
            p = s["pick"] or {}
            ref = s.get("judged") or {}
            per = " / ".join(f"{v:.3f}" for v in ref.get("per_seed", {}).values()) or "-"
            lines.append(
                f"| {name}: {s['label']} | {s['candidates']} | {s['records']} ({' / '.join(map(str, s['per_rung']))}) "
                f"| {s['steps']} | {s['train_seconds']:.0f} | {p.get('key', '-')} | {_g(p.get('mult_adds'))} | "
                f"{p.get('rung', '-')} | {_f(p.get('score'))} | {per} | {_f(ref.get('mean'))} |"
            )
        lines += ["", verdict(res), *([baseline_line(res)] if res.get("baseline") else []), ""]
    return "\n".join(lines)


def baseline_line(res: dict) -> str:
    """The single-fidelity pick against the stored search's (`--baseline`), judged alike."""
    a, b = (res["baseline"].get("judged") or {}).get("mean"), (res["single"].get("judged") or {}).get("mean")
    what = (
        f"the stored search `{res['baseline_search']}` ({res['baseline']['steps_per_candidate']} steps per candidate)"
    )
    if a is None or b is None:
        return f"Against {what}: not judged yet."
    if res["baseline"]["pick"]["key"] == res["single"]["pick"]["key"]:
        return f"Against {what}: the same pick."
    return (
        f"Against {what}: this single-fidelity search picks {b - a:+.3f} dB on the reference mean (per seed "
        + " / ".join(
            f"{res['single']['judged']['per_seed'][k] - res['baseline']['judged']['per_seed'][k]:+.3f}"
            for k in res["single"]["judged"]["per_seed"]
        )
        + ")."
    )


def verdict(res: dict) -> str:
    single, promoted = res["single"], res["promoted"]
    a, b = (single.get("judged") or {}).get("mean"), (promoted.get("judged") or {}).get("mean")
    if a is None or b is None:
        return "Not judged yet: a reference run is missing."
    kinds = [(s.get("judged") or {}).get("precision") for s in (single, promoted)]
    if kinds[0] != kinds[1]:
        return (
            f"Not comparable: the picks' reference runs were trained in different precisions ({kinds[0]} / {kinds[1]})."
        )
    single_ref, promoted_ref = single["judged"]["per_seed"], promoted["judged"]["per_seed"]
    ratio = promoted["steps"] / single["steps"] if single["steps"] else float("nan")
    same = single["pick"]["key"] == promoted["pick"]["key"]
    what = (
        "the same model"
        if same
        else (
            f"a {'better' if b > a else 'worse' if b < a else 'equally good'} model ({b - a:+.3f} dB on the reference"
            f" mean; per seed {' / '.join(f'{promoted_ref[k] - single_ref[k]:+.3f}' for k in single_ref)})"
        )
    )
    met = "met" if b >= a else "not met"
    return (
        f"Promotion picks {what} at {ratio:.2f}x the single-fidelity search's training steps: the goal (at least as "
        f"good at equal cost) is {met} in this band, on one search."
    )


def _shown_path(path: Path) -> str:
    """A folder as the report names it: relative to the repository where it is inside it."""
    full = path.resolve()
    return str(full.relative_to(REPO) if full.is_relative_to(REPO) else path)


def _g(v) -> str:
    return "-" if v is None else f"{v / 1e9:.1f}G"


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--band", choices=sorted(BANDS), default="b")
    parser.add_argument("--rungs", default="100,300,700", help="the promoted search's rungs (training steps)")
    parser.add_argument("--eta", type=int, default=2)
    parser.add_argument("--generations", type=int, default=1, help="generations after the initial one")
    parser.add_argument("--seeds", default="0,1", help="the reference's seeds (the judge)")
    parser.add_argument("--reference", default="p2000", choices=sorted(BOOK))
    parser.add_argument("--single", type=Path, default=None, help="the single-fidelity search's results folder")
    parser.add_argument(
        "--single-steps",
        type=int,
        default=None,
        help="steps per candidate of the single-fidelity search (default: its experiment's trainer.max_steps)",
    )
    parser.add_argument(
        "--single-search",
        nargs="*",
        default=None,
        help="run the single-fidelity search here, the band's experiment with these overrides (e.g. budget=search "
        "search.estimator=final), instead of reading the showdown's stored one",
    )
    parser.add_argument(
        "--stage",
        choices=("all", "single", "promoted"),
        default="all",
        help="run only this search and stop (two processes, one per search; then one with --stage all judges)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another stored single-fidelity search of the band (e.g. bench/results/showdown2/search_b, the old "
        "budget), read and judged alike: its pick is a third row, compared with the single-fidelity pick",
    )
    parser.add_argument("--search", nargs="*", default=[], help="extra overrides of the promoted search (toy runs)")
    parser.add_argument(
        "--variant",
        default=None,
        help="a second promoted search of the band (e.g. other --search overrides), stored beside the first as "
        "<band>_<variant>.json and search_<band>_<variant>/",
    )
    parser.add_argument(
        "--judge-precision",
        default=None,
        choices=("32-true", "bf16-mixed"),
        help="judge both picks in this Lightning precision (e.g. 32-true, as the stored judges trained): a stored "
        "run in it is reused, a missing one trained with trainer.precision set",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--store", type=Path, default=_runs.STORE, help="the run store (shared with proxy_fidelity)")
    parser.add_argument("--sweep", type=Path, default=None, help="the promoted search's folder (default outputs/)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="report from what is stored; train nothing")
    args = parser.parse_args(argv)
    rungs = [int(v) for v in args.rungs.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    experiment = BANDS[args.band]["experiment"]
    name = args.band if args.variant is None else f"{args.band}_{args.variant}"
    if args.single_search is not None and args.single is not None:
        parser.error("--single reads a stored search, --single-search runs one: give one of them")
    if args.stage == "single" and args.single_search is None:
        parser.error("--stage single runs the search of --single-search: give its overrides (or use --stage all)")
    _runs.set_threads(args.threads)
    folder = f"search_{name}"
    sweep = args.sweep or REPO / "outputs" / "promotion_search" / folder
    if args.single_search is not None:
        single_dir = args.results / f"{folder}_single"
        if not args.report and args.stage in ("all", "single"):
            showdown.run_search(
                args.results,
                sweep.with_name(sweep.name + "_single"),
                [f"search.generations={args.generations}", "search.fidelity.rungs=[]", *args.single_search],
                args.threads,
                experiment,
                single_dir.name,
            )
        if args.stage == "single":
            log(f"single-fidelity search stored in {single_dir}")
            return 0
    else:
        single_dir = args.single or REPO / "bench" / "results" / "showdown2" / f"search_{args.band}"
    search_args = [
        f"search.generations={args.generations}",
        f"search.fidelity.rungs=[{','.join(map(str, rungs))}]",
        f"search.fidelity.eta={args.eta}",
        f"trainer.max_steps={rungs[-1]}",
        *args.search,
    ]
    if not args.report:
        showdown.run_search(args.results, sweep, search_args, args.threads, experiment, folder)
    if args.stage == "promoted":
        log(f"promoted search stored in {args.results / folder}")
        return 0
    single_cfg = single_dir / "search_config.yaml"
    if not single_cfg.is_file():
        raise SystemExit(f"error: no single-fidelity search in {single_dir} (search_config.yaml): run it first")
    cfg = OmegaConf.load(single_cfg)
    bounds = (cfg.search.settings.constraints.get("min_mult_adds"), cfg.search.settings.constraints.max_mult_adds)
    if list(cfg.search.fidelity.rungs):
        raise SystemExit(f"error: {single_dir}'s search used promotion (search.fidelity.rungs): not single fidelity")
    promoted_records = read_journal(args.results / folder / "journal.jsonl")
    if not promoted_records:
        raise SystemExit(f"error: no promoted search stored in {args.results / folder}: run without --report first")
    single_records = read_journal(single_dir / "journal.jsonl", args.generations)
    steps = args.single_steps or experiment_steps(experiment, args.single_search or ())
    single = summarise(single_records, [], steps, bounds)
    promoted = summarise(promoted_records, rungs, rungs[-1], bounds)
    single["label"] = f"{steps} steps"
    promoted["label"] = f"rungs {rungs}, eta {args.eta}"
    sides = [single, promoted]
    baseline = None
    if args.baseline is not None:  # it ran with the band's experiment as it is (the showdown's search)
        if not (args.baseline / "journal.jsonl").is_file():
            raise SystemExit(
                f"error: --baseline {args.baseline}: no journal.jsonl there; give a stored search's folder"
            )
        base_steps = experiment_steps(experiment)
        baseline = summarise(read_journal(args.baseline / "journal.jsonl", args.generations), [], base_steps, bounds)
        baseline["label"] = f"{base_steps} steps, {args.baseline.name}"
        baseline["steps_per_candidate"] = base_steps
        sides.append(baseline)
    for s in sides:
        if s["pick"] is None:
            raise SystemExit("error: a search trained no candidate inside the band: nothing to judge")
        s["judged"] = judge(
            s["pick"]["genome"],
            args.reference,
            seeds,
            args.store,
            train=not args.report,
            precision=args.judge_precision,
        )
    shown = " ".join(a for a in search_args if not a.startswith("search.generations="))
    result = {
        "band": args.band,
        **({"variant": args.variant, "search_overrides": args.search} if args.variant else {}),
        "bounds": list(bounds),
        "generations": args.generations,
        "rungs": rungs,
        "eta": args.eta,
        "reference": args.reference,
        "seeds": seeds,
        "command": f"python bench/promotion_search.py --band {args.band} --generations {args.generations} "
        f"--rungs {args.rungs} --eta {args.eta} --seeds {args.seeds}"
        + (f" --variant {args.variant}" if args.variant else "")
        + (f" --single-search {' '.join(args.single_search)}" if args.single_search is not None else "")
        + (f" --search {' '.join(args.search)}" if args.variant else "")
        + (f" --judge-precision {args.judge_precision}" if args.judge_precision else "")
        + (f" --baseline {_shown_path(args.baseline)}" if args.baseline is not None else ""),
        "promoted_search": f"python search.py +search=nsga2 experiment={experiment} "
        f"search.generations={args.generations} {shown}",
        "single_search": _shown_path(single_dir),
        **({"single_search_overrides": args.single_search} if args.single_search is not None else {}),
        "single": single,
        "promoted": promoted,
        **({"baseline": baseline, "baseline_search": _shown_path(args.baseline)} if baseline else {}),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    stored = {p.stem: json.loads(p.read_text()) for p in sorted(args.results.glob("*.json"))}
    (args.results / "promotion_search.md").write_text(render(stored))
    log(verdict(result))
    log(f"written {args.results / 'promotion_search.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
