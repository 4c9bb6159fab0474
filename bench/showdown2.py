"""Showdown, round 2 (issue 22): band searches, a selection that leaks nothing, fresh seeds, recipe R*.

    python bench/showdown2.py --bands b              # band B: search, selection, R* on fresh seeds (resumable)
    python bench/showdown2.py --bands a              # then band A
    python bench/showdown2.py --report               # report, JSON and plot from what is stored; trains nothing
    python bench/showdown.py --round 2 --report      # the same entry under round 1's name
    python bench/showdown2.py --bands b --recipe trainer.max_steps=10000 data.samples_per_epoch=160000 trainer.accelerator=gpu

Why a round 2: round 1 (bench/showdown.py) searched with the 100-step proxy, which ranks at chance; its front
stopped at 34G; its winners' seed-0 numbers were the runs that chose them; its recipe R was 1000 steps.

1. The search, per band: `python search.py +search=nsga2 experiment=showdown_<band>` (pinned there: FALSR-B's
   budget 40-74.5G or FALSR-A's 100-235G, budget=search ranked by its extrapolated curve, no pre-screening, no
   promotion, population 16; `--generations` after the initial one). Candidates train with the config's seed (0).
2. The selection, per band: the `--k` candidates with the best search score (the journal's psnr, what the search
   ranked by) go through successive halving over `--rungs` (recipes of bench/proxy_fidelity.py; the last one is
   R*), every rung a fresh run (restarting ranks better than continuing a longer schedule: p300 tau 0.371 against
   p1000@300's 0.169), validated on the held-out T91 images only (Set5/Set14 are not even computed), with the
   `--choice-seeds`; the best 1/eta go on; the winner has the best held-out PSNR at the last rung.
3. R* (the last rung's recipe, p2000, plus `--recipe`) for the winners and FALSR-A/B/C with `--seeds`, which took no
   part in the search or the choice; Set5/Set14 PSNR/SSIM are each run's final validation (fp32, the evaluation
   protocol: evaluate.py on the exported weights gives the same, tests/test_showdown2.py).
4. In `--results` (bench/results/showdown2/): showdown2.md and .json (means, sample std, per-seed values, per-seed
   differences against the released model of the same budget with a paired t-test), showdown2.png, search_<band>/
   (journal, front, config of the search); and, except with --report, conf/model/searched_<band>.yaml and
   zoo/searched_<band>.pt (the winner's weights of the first reported seed).

All training goes through bench/_runs.py's store (bench/results/runs.jsonl): a FALSR-A/B/C run of bench/proxy_fidelity.py
with the same recipe and seed is the same run, and a rerun trains nothing twice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _estimators
import _runs
import showdown
from proxy_fidelity import QUICK_RECIPES, RECIPES, zoo_genome

REPO = _runs.REPO
BOOK = {**RECIPES, **QUICK_RECIPES}  # the rungs' recipes by name (the quick ones for toy runs)
# band -> the winner's name, its pinned search, the released model of its budget, other released models trained with it
BANDS = {
    "b": {"name": "searched_b", "experiment": "showdown_b", "released": "falsr_b", "also": ("falsr_c",)},
    "a": {"name": "searched_a", "experiment": "showdown_a", "released": "falsr_a", "also": ()},
}
RELEASED = {"falsr_a": "FALSR-A", "falsr_b": "FALSR-B", "falsr_c": "FALSR-C"}


def log(msg: str) -> None:
    print(f"[showdown2 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- overrides ------------------------------------------------------------------------------------------------------
def holdout_only(overrides: list[str]) -> list[str]:
    """The selection never validates on a test set: only the held-out T91 images."""
    return [o for o in overrides if not o.startswith("data.val_sets=")] + ["data.val_sets=[holdout]"]


def rung_overrides(genome: str, rung: str, seed: int, rungs: list[str], recipe: list[str]) -> list[str]:
    """One selection run: a fresh run of the rung's recipe (the last rung is R*, with --recipe), held-out only."""
    extra = recipe if rung == rungs[-1] else []
    return holdout_only(["model=genome", f"model.genome={genome}", f"seed={seed}", *BOOK[rung], *extra])


def final_overrides(genome: str, seed: int, rungs: list[str], recipe: list[str]) -> list[str]:
    """A reported run: R* as bench/proxy_fidelity.py trains it (same key for the same genome and seed)."""
    return ["model=genome", f"model.genome={genome}", f"seed={seed}", *BOOK[rungs[-1]], *recipe]


def _ok(rec: dict | None) -> bool:
    return bool(rec) and rec.get("status") == "ok"


def train_or_read(jobs: list[tuple[str, list[str]]], store: Path, train: bool) -> dict[str, dict]:
    """key -> record of each job: trained when missing (train), else what the store holds."""
    if train:
        return _runs.work_through(jobs, store)
    done = _runs.load_store(store)
    return {k: done[k] for k in (_runs.run_key(o) for _, o in jobs) if k in done}


# -- 2. the selection -----------------------------------------------------------------------------------------------
def candidates(results: Path, band: str, k: int) -> list[dict]:
    """The k trained candidates of the band's search with the best search score (the journal's psnr: the estimator's
    value, `measured_psnr` beside it), one record per candidate."""
    journal = results / f"search_{band}" / "journal.jsonl"
    if not journal.is_file():
        return []
    best: dict[str, dict] = {}
    for line in journal.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r.get("status") == "ok" and r.get("psnr") is not None and math.isfinite(r["psnr"]):
                best[r["key"]] = r
    return sorted(best.values(), key=lambda r: -r["psnr"])[:k]


def select(
    cands: list[dict], rungs: list[str], eta: int, seeds: list[int], recipe: list[str], store: Path, train: bool
) -> dict:
    """Successive halving (bench/_estimators.successive_halving, the rule the fidelity bench simulated) with real
    runs, each rung a fresh one; a candidate's score at a rung is its held-out PSNR, the mean over `seeds`.
    Returns the winner's key (None until the last rung is stored) and every rung's scores and CPU seconds."""
    by_key = {c["key"]: c for c in cands}
    scores: dict[tuple[str, str], float | None] = {}
    cpu: dict[tuple[str, str], float] = {}

    def score_at(key: str, rung: str) -> float | None:
        if (key, rung) not in scores:
            jobs = [
                (
                    f"showdown2/choice/{rung}/s{s}/{key[:8]}",
                    rung_overrides(by_key[key]["genome"], rung, s, rungs, recipe),
                )
                for s in seeds
            ]
            recs = train_or_read(jobs, store, train)
            got = [recs.get(_runs.run_key(o)) for _, o in jobs]
            vals = [r["val"]["holdout"]["psnr"] for r in got if _ok(r) and "holdout" in (r.get("val") or {})]
            scores[(key, rung)] = float(np.mean(vals)) if len(vals) == len(seeds) else None
            cpu[(key, rung)] = round(sum(r.get("cpu_seconds") or 0 for r in got if r), 1)
            if train and scores[(key, rung)] is None:
                log(f"selection: {key[:8]} at {rung} has no held-out PSNR (failed run), dropped")
        return scores[(key, rung)]

    pick, trained = _estimators.successive_halving(list(by_key), score_at, rungs, eta) if by_key else (None, [])
    complete = len(trained) == len(rungs) or (pick is not None and len(trained[-1]) == 1)
    return {
        "winner": pick if complete else None,
        "rungs": rungs,
        "eta": eta,
        "seeds": seeds,
        "stages": [{"rung": rung, "scores": {k: scores[(k, rung)] for k in who}} for rung, who in zip(rungs, trained)],
        "cpu_seconds": round(sum(cpu.values()), 1),
    }


# -- 3. the report arithmetic ---------------------------------------------------------------------------------------
def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """a - b per seed on the seeds both have, their mean and sample std, and a two-sided paired t-test over the
    seeds (scipy.stats.ttest_rel; n = seeds; no test below 2)."""
    from scipy.stats import ttest_rel

    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    out = {
        "seeds": seeds,
        "n": len(seeds),
        "diffs": diffs,
        "mean": float(np.mean(diffs)) if diffs else None,
        "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
        "t": None,
        "p": None,
    }
    if len(seeds) >= 2 and np.ptp(diffs) > 0:
        res = ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
        out["t"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def row_of(name: str, genome: str, runs: dict[int, dict], benchmarks: list[str], note: str = "") -> dict:
    """A model's row: costs and, per benchmark, the per-seed PSNR/SSIM of its R* runs (seed -> value; the JSON's
    keys are the seeds as strings)."""
    from falsr.space.cost import genome_cost

    cost = genome_cost(genome)
    per = {
        b: {
            "psnr": {s: r["val"][b]["psnr"] for s, r in runs.items() if b in (r.get("val") or {})},
            "ssim": {s: r["val"][b]["ssim"] for s, r in runs.items() if b in (r.get("val") or {})},
        }
        for b in benchmarks
    }
    return {
        "name": name,
        "genome": genome,
        "mult_adds": cost.mult_adds,
        "params": cost.params,
        "seeds": sorted(runs),
        "per_seed": per,
        "note": note,
        "cpu_seconds": round(sum(r.get("cpu_seconds") or 0 for r in runs.values()), 1),
    }


def _ms(values, digits: int = 3) -> str:
    values = list(values)
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _f(v, digits: int = 3, sign: bool = False) -> str:
    return "-" if v is None else f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def render(result: dict) -> str:
    """showdown2.md from showdown2.json's content (nothing computed here that is not in it)."""
    cfg, benchmarks = result["config"], result["config"]["benchmarks"]
    lines = [
        "# bench/showdown2.py (showdown, round 2)",
        "",
        f"`python bench/showdown2.py --report` wrote this from the run store ({cfg['store']}) and the searches "
        "in this folder; the numbers are in showdown2.json.",
        "",
        f"R*: `{cfg['rungs'][-1]}` (`{' '.join(BOOK[cfg['rungs'][-1]])}`"
        + (f" with `{' '.join(cfg['recipe'])}`" if cfg["recipe"] else "")
        + "). "
        f"Reported seeds {cfg['seeds']}: none took part in a search (its candidates train with seed "
        f"{cfg['search_seed']}) or in the choice (seeds {cfg['choice_seeds']}). PSNR/SSIM (Y, 2-pixel border, fp32): "
        "each run's final validation; mean ± sample std over the seeds.",
        "",
        "## Searches and selections",
        "",
    ]
    for band, s in result["bands"].items():
        search, sel = s.get("search"), s.get("selection")
        if not search:
            lines += [f"* Band {band.upper()}: not yet run (`python bench/showdown2.py --bands {band}`).", ""]
            continue
        bounds = s.get("bounds") or [None, None]
        args = search.get("args", [])
        shown = " ".join(a for a in args if not a.startswith(("hydra.", "search.resume=")))
        resumed = any(a.startswith("search.resume=") for a in args)
        lines.append(
            f"* Band {band.upper()} ({_f(bounds[0] and bounds[0] / 1e9, 1)}-{_f(bounds[1] and bounds[1] / 1e9, 1)}G): "
            f"`python search.py {shown}`: {search.get('candidates')} candidates ({search.get('trained_ok')} trained), "
            f"{search.get('cpu_seconds')} CPU s, {search.get('wall_seconds')} s wall"
            + (" (resumed from an earlier sitting: these seconds are the last sitting's)." if resumed else ".")
        )
        if not sel or not sel["stages"]:
            lines += ["  Selection: not yet run.", ""]
            continue
        lines.append(
            f"  Selection: the {len(sel['stages'][0]['scores'])} best by search score, successive halving over "
            f"{' -> '.join(sel['rungs'])} (fresh runs, eta {sel['eta']}, seeds {sel['seeds']}, held-out T91 "
            f"PSNR only), {sel['cpu_seconds']} CPU s; winner: "
            + (f"`{sel['winner'][:8]}`." if sel["winner"] else "not yet (rungs missing).")
        )
        lines += [
            "",
            "| candidate | mult-adds | search score | search's measured PSNR | "
            + " | ".join(f"{r} held-out" for r in sel["rungs"])
            + " | genome |",
            "| --- | --- | --- | --- | " + " | ".join("---" for _ in sel["rungs"]) + " | --- |",
        ]
        for c in s["candidates"]:
            cells = [_f(st["scores"].get(c["key"])) for st in sel["stages"]]
            cells += ["-"] * (len(sel["rungs"]) - len(cells))
            mark = " (winner)" if c["key"] == sel["winner"] else ""
            lines.append(
                f"| `{c['key'][:8]}`{mark} | {c['mult_adds'] / 1e9:.1f}G | {c['psnr']:.3f} | "
                f"{_f(c.get('measured_psnr'))} | " + " | ".join(cells) + f" | `{c['genome']}` |"
            )
        lines.append("")
    lines += [
        "## Results (R*, reported seeds)",
        "",
        "| model | mult-adds | params | "
        + " | ".join(f"{b} PSNR | {b} SSIM" for b in benchmarks)
        + " | n | per-seed PSNR ("
        + " / ".join(benchmarks)
        + ") | genome |",
        "| --- | --- | --- | " + " | ".join("--- | ---" for _ in benchmarks) + " | --- | --- | --- |",
    ]
    for row in result["rows"]:
        cells, per_seed = [], []
        for b in benchmarks:
            cells += [_ms(row["per_seed"][b]["psnr"].values()), _ms(row["per_seed"][b]["ssim"].values(), 4)]
        for s in row["seeds"]:
            per_seed.append(f"{s}: " + " / ".join(_f(row["per_seed"][b]["psnr"].get(str(s))) for b in benchmarks))
        lines.append(
            f"| {row['name']} | {row['mult_adds'] / 1e9:.1f}G | {row['params']:,} | "
            + " | ".join(cells)
            + f" | {len(row['seeds'])} | {'; '.join(per_seed) or '-'} | `{row['genome']}` |"
        )
    bic = result["bicubic"]
    lines += [
        "| bicubic | - | - | "
        + " | ".join(f"{bic[b]['psnr']:.3f} | {bic[b]['ssim']:.4f}" for b in benchmarks)
        + " | - | - | - |",
        "",
    ]
    if result["comparisons"]:
        lines += [
            "## Against the released model of the same budget",
            "",
            "Per-seed PSNR differences (searched minus released, same seed: same patches, same initialisation "
            "stream) and a two-sided paired t-test over the seeds (scipy.stats.ttest_rel).",
            "",
            "| pair | benchmark | per-seed differences (dB) | mean ± std (dB) | t | p | n |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in result["comparisons"]:
            for b in benchmarks:
                d = c[b]
                diffs = ", ".join(f"{s}: {v:+.3f}" for s, v in zip(d["seeds"], d["diffs"])) or "-"
                lines.append(
                    f"| {c['searched']} - {c['released']} | {b} | {diffs} | {_f(d['mean'], sign=True)} ± "
                    f"{_f(d['std'])} | {_f(d['t'], 2)} | {_f(d['p'], 4)} | {d['n']} |"
                )
        lines.append("")
    lines.append("![PSNR against mult-adds, R*, per-seed points](showdown2.png)")
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> None:
    """PSNR against mult-adds per benchmark: each seed a small point, the mean a large one; released models as
    squares, searched as circles; the bands shaded; bicubic dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = result["config"]["benchmarks"]
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5.5 * len(benchmarks), 4.2), dpi=100, squeeze=False)
    for ax, b in zip(axes[0], benchmarks):
        for _band, s in result["bands"].items():
            if s.get("bounds") and None not in s["bounds"]:
                ax.axvspan(s["bounds"][0] / 1e9, s["bounds"][1] / 1e9, color="0.93", zorder=0)
        for row in result["rows"]:
            psnr = list(row["per_seed"][b]["psnr"].values())
            if not psnr:
                continue
            released = row["name"].startswith("FALSR")
            color, marker = ("tab:blue", "s") if released else ("tab:red", "o")
            x = row["mult_adds"] / 1e9
            ax.scatter([x] * len(psnr), psnr, s=12, color=color, alpha=0.5, marker=marker)
            ax.scatter([x], [np.mean(psnr)], s=60, color=color, marker=marker, edgecolor="black", zorder=3)
            ax.annotate(row["name"], (x, np.mean(psnr)), textcoords="offset points", xytext=(5, 4), fontsize=8)
        showdown.finish_axes(
            ax,
            b,
            result["bicubic"][b]["psnr"],
            "mult-adds (G, 480x480 LR); grey: the search bands",
            f"{b}: R*, seeds {result['config']['seeds']} (small: per seed, large: mean)",
        )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _clean(obj):
    """JSON without NaN (null instead) and with string keys."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _bounds(results: Path, band: str) -> list[float | None] | None:
    path = results / f"search_{band}" / "search_config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    c = OmegaConf.load(path).search.settings.constraints
    return [c.get("min_mult_adds"), c.get("max_mult_adds")]


# -- the whole --------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "showdown2")
    parser.add_argument(
        "--sweeps",
        type=Path,
        default=REPO / "outputs" / "showdown2",
        help="the searches' sweep folders, <sweeps>/search_<band> (git-ignored: checkpoints)",
    )
    parser.add_argument("--bands", default="b,a", help="which bands to run (b: FALSR-B's, a: FALSR-A's; b runs first)")
    parser.add_argument(
        "--generations",
        type=int,
        default=None,
        help="generations after the initial one (default: the pinned config's 3: 64 candidates)",
    )
    parser.add_argument("--search", nargs="*", default=[], help="extra overrides of the searches")
    parser.add_argument("--k", type=int, default=6, help="candidates per band that go to the selection")
    parser.add_argument(
        "--rungs",
        default="p1000,p2000",
        help="the selection's recipes (bench/proxy_fidelity.py's names); the last one is R*",
    )
    parser.add_argument("--eta", type=int, default=2, help="the best 1/eta of a rung go on to the next")
    parser.add_argument("--choice-seeds", default="10", help="the selection's seeds (never reported)")
    parser.add_argument("--seeds", default="100,101,102", help="the reported seeds (never used to choose)")
    parser.add_argument("--recipe", nargs="*", default=[], help="extra overrides of R* (e.g. a GPU's longer R*)")
    parser.add_argument("--benchmarks", default="Set5,Set14")
    parser.add_argument("--zoo", type=Path, default=REPO / "zoo")
    parser.add_argument("--conf", type=Path, default=REPO / "conf" / "model")
    parser.add_argument("--store", type=Path, default=_runs.STORE, help="the run store (shared with proxy_fidelity)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="report and plot from what is stored; train nothing")
    args = parser.parse_args(argv)
    rungs, bands = args.rungs.split(","), [b for b in args.bands.split(",") if b]
    unknown = [r for r in rungs if r not in BOOK] + [b for b in bands if b not in BANDS]
    if unknown:
        parser.error(
            f"unknown rung or band {unknown[0]!r}: rungs from {', '.join(BOOK)}; bands from {', '.join(BANDS)}"
        )
    seeds = [int(s) for s in args.seeds.split(",")]
    choice_seeds = [int(s) for s in args.choice_seeds.split(",")]
    # every candidate of the searches trains with train.yaml's seed (0) unless --search sets another
    search_seed = int(([o.split("=", 1)[1] for o in args.search if o.startswith("seed=")] or ["0"])[-1])
    if set(seeds) & (set(choice_seeds) | {search_seed}):
        parser.error(
            f"--seeds {args.seeds} overlap the choice's seeds {choice_seeds} or the search's ({search_seed}): "
            "reported seeds must take no part in the choice"
        )
    benchmarks = args.benchmarks.split(",")
    _runs.set_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    train = not args.report
    search_args = [*([f"search.generations={args.generations}"] if args.generations is not None else []), *args.search]

    bands_out, rows, comparisons, released_done = {}, [], [], set()
    for band, spec in BANDS.items():
        done_file = args.results / f"search_{band}" / "search_done.json"
        if train and band in bands:
            search = showdown.run_search(
                args.results,
                args.sweeps / f"search_{band}",
                search_args,
                args.threads,
                experiment=spec["experiment"],
                folder=f"search_{band}",
            )
        else:
            search = json.loads(done_file.read_text()) if done_file.is_file() else None
        entry = {"search": search, "bounds": _bounds(args.results, band), "candidates": [], "selection": None}
        bands_out[band] = entry
        if search is None:
            continue
        run_band = train and band in bands
        cands = candidates(args.results, band, args.k)
        entry["candidates"] = [
            {k: c.get(k) for k in ("key", "genome", "mult_adds", "params", "psnr", "measured_psnr")} for c in cands
        ]
        sel = select(cands, rungs, args.eta, choice_seeds, args.recipe, args.store, run_band)
        entry["selection"] = sel
        winner = next((c for c in cands if c["key"] == sel["winner"]), None)
        if winner:
            log(f"band {band}: winner {winner['genome']} ({winner['mult_adds'] / 1e9:.1f}G)")
        models = [(RELEASED[r], zoo_genome(r), r, "") for r in (spec["released"], *spec["also"])]
        if winner:
            models.insert(
                0,
                (
                    spec["name"],
                    winner["genome"],
                    spec["name"],
                    f"band {band.upper()} winner of round 2: successive halving over {'->'.join(rungs)} "
                    f"(seeds {choice_seeds}, held-out images) among the {len(cands)} best by search score",
                ),
            )
        jobs = [
            (f"showdown2/s{s}/{name}", final_overrides(g, s, rungs, args.recipe))
            for name, g, _, _ in models
            for s in seeds
        ]
        recs = train_or_read(jobs, args.store, run_band)
        failed = [r for r in recs.values() if not _ok(r)]
        if run_band and failed:
            raise SystemExit(
                f"error: {len(failed)} R* trainings failed, e.g. {failed[0]['label']}: {failed[0].get('error')}"
            )
        for name, genome, conf, note in models:
            if conf in released_done:
                continue
            released_done.add(conf)
            keys = {s: _runs.run_key(final_overrides(genome, s, rungs, args.recipe)) for s in seeds}
            runs = {s: recs[k] for s, k in keys.items() if _ok(recs.get(k))}
            if run_band and seeds[0] in runs:
                # The first fresh seed's weights go to the zoo: the winner as <conf>.pt with its config, a released
                # architecture as <conf>_r.pt. A run stored on another machine has no checkpoint (git-ignored): it
                # trains again, and its new record (same recipe and seed) is the one reported.
                if _runs.checkpoint(runs[seeds[0]]) is None:
                    log(f"{name}: the weights of seed {seeds[0]} are gone; training it again to export them")
                    label = f"showdown2/s{seeds[0]}/{name}"
                    again = _runs.work_through(
                        [(label, final_overrides(genome, seeds[0], rungs, args.recipe))], args.store, weights=True
                    )
                    runs[seeds[0]] = again[keys[seeds[0]]]
                showdown.export_weights(runs[seeds[0]], conf if note else f"{conf}_r", args.zoo)
                if note:
                    showdown.write_model_config(
                        conf, genome, note + f"; weights: R*, seed {seeds[0]}", args.conf, script="bench/showdown2.py"
                    )
            rows.append(row_of(name, genome, runs, benchmarks, note))
    by_name = {r["name"]: r for r in rows}
    for _band, spec in BANDS.items():
        w, r = by_name.get(spec["name"]), by_name.get(RELEASED[spec["released"]])
        if w and r:
            comparisons.append(
                {
                    "searched": w["name"],
                    "released": r["name"],
                    **{b: paired(w["per_seed"][b]["psnr"], r["per_seed"][b]["psnr"]) for b in benchmarks},
                }
            )
    rows.sort(key=lambda r: (not r["name"].startswith("FALSR"), r["name"]))
    result = {
        "config": {
            "rungs": rungs,
            "eta": args.eta,
            "k": args.k,
            "choice_seeds": choice_seeds,
            "seeds": seeds,
            "search_seed": search_seed,
            "recipe": args.recipe,
            "benchmarks": benchmarks,
            "store": str(args.store.resolve().relative_to(REPO))
            if args.store.resolve().is_relative_to(REPO)
            else args.store.name,
            "r_star": final_overrides("<genome>", "<seed>", rungs, args.recipe)[3:],
        },
        "bands": bands_out,
        "rows": rows,
        "comparisons": comparisons,
        "bicubic": showdown.bicubic_scores(benchmarks),
    }
    result = _clean(result)
    (args.results / "showdown2.json").write_text(json.dumps(result, indent=1) + "\n")
    text = render(result)
    (args.results / "showdown2.md").write_text(text)
    plot(result, args.results / "showdown2.png")
    print(text)
    log(f"written {args.results / 'showdown2.md'}, showdown2.json and showdown2.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
