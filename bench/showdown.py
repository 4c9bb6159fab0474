"""Does the search win?  Searched networks against FALSR-A/B/C, every one trained from scratch with recipe R (round 1).

Round 1 as it ran (experiment=showdown, the 100-step proxy, recipe R = p1000); round 2 (band searches, a
selection without leaks, fresh seeds, R* = p2000) is bench/showdown2.py, also `python bench/showdown.py --round 2 ...`.

    python bench/showdown.py                 # the whole comparison (resumable: finished pieces are skipped)
    python bench/showdown.py --report        # the table and plot from what is stored, no training
    python bench/showdown.py --recipe trainer.max_steps=10000 data.samples_per_epoch=160000 trainer.accelerator=gpu

1. The search: `python search.py +search=nsga2 experiment=showdown` (the CPU proxy, held-out validation,
   population 16, 4 generations after the initial one, mult-adds cap 235G). Its journal, front and plots
   are copied to the results folder; a rerun resumes an unfinished search and skips a finished one.
2. The choice, per budget (FALSR-B's and FALSR-A's mult-adds): the `--k` front models under the budget with
   the best proxy PSNR are trained with R (seed 0); the one with the best held-out PSNR after R is the
   winner. Test sets are never used to choose.
3. R (`budget=reference`, or the overrides of `--recipe` on top) for the winners and FALSR-A/B/C, seeds of
   `--seeds`; each R-trained model is evaluated by `evaluate.py` on Set5 and Set14.
4. Results: `showdown.md` (one row per model: costs, Set5/Set14 PSNR/SSIM mean and spread over seeds,
   search CPU time, R), `showdown.png` (PSNR against mult-adds, FALSR-A/B/C(R) and bicubic marked),
   `conf/model/<winner>.yaml` and the seed-0 weights in `zoo/`.

Training runs are shared with bench/proxy_fidelity.py through bench/results/runs.jsonl: the panel's
reference runs of FALSR-A/B/C are these models' R runs (same overrides, same keys).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _runs
from proxy_fidelity import RECIPES, zoo_genome

REPO = _runs.REPO
RELEASED = (("FALSR-A", "falsr_a"), ("FALSR-B", "falsr_b"), ("FALSR-C", "falsr_c"))
# (name of the winner, the released model whose mult-adds are its budget)
BUDGETS = (("searched_b", "falsr_b"), ("searched_a", "falsr_a"))
SEARCH_FILES = (
    "journal.jsonl",
    "pareto.json",
    "pareto.md",
    "search_config.yaml",
    "front_psnr_vs_mult_adds.png",
    "front_psnr_vs_params.png",
    "front_params_vs_mult_adds.png",
)


def log(msg: str) -> None:
    print(f"[showdown {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- 1. the search -----------------------------------------------------------------------------------------
def run_search(
    results: Path,
    sweep: Path,
    search_args: list[str],
    threads: int | None,
    experiment: str = "showdown",
    folder: str = "search",
    files: tuple[str, ...] = SEARCH_FILES,
) -> dict:
    """Run (or resume, or skip) the search; copy its small outputs (`files`) to results/<folder>. Returns its
    summary."""
    done_file = results / folder / "search_done.json"
    if done_file.is_file():
        log(f"search: finished before ({done_file.relative_to(REPO) if done_file.is_relative_to(REPO) else done_file})")
        return json.loads(done_file.read_text())
    args = ["+search=nsga2", f"experiment={experiment}", f"hydra.sweep.dir={sweep}", *search_args]
    if (sweep / "search_state.pt").is_file():
        args.append(f"search.resume={sweep}")
        log(f"search: resuming {sweep}")
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_SILENT="true")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    log("search: python search.py " + " ".join(args))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "search.py", *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (sweep / "search.log").write_text(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(
            f"error: the search failed (exit {proc.returncode}); its log: {sweep / 'search.log'}\n"
            + proc.stdout[-2000:]
        )
    out = results / folder
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (sweep / name).is_file():
            shutil.copy(sweep / name, out / name)
    records = [json.loads(line) for line in (sweep / "journal.jsonl").read_text().splitlines() if line.strip()]
    summary = {
        "args": args,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "candidates": len(records),
        "trained_ok": sum(r.get("status") == "ok" for r in records),
        "train_seconds": round(sum(r.get("train_seconds") or 0 for r in records), 1),
    }
    if summary["trained_ok"] == 0:
        raise SystemExit(
            f"error: the search in {sweep} trained no candidate (see its journal.jsonl and search.log); "
            "fix the cause, delete the folder and rerun"
        )
    done_file.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"search: {summary['candidates']} candidates ({summary['trained_ok']} trained) in {wall:.0f} s")
    return summary


# -- 2. the choice -----------------------------------------------------------------------------------------
def front_under(results: Path, budget: float, k: int, exclude=()) -> list[dict]:
    """The k models of the search's front under `budget` mult-adds with the best proxy PSNR (not in `exclude`)."""
    pareto = json.loads((results / "search" / "pareto.json").read_text())
    under = [r for r in pareto["front"] if r["mult_adds"] <= budget and r["key"] not in exclude]
    return sorted(under, key=lambda r: -r["psnr"])[:k]


def r_overrides(genome: str, seed: int, recipe: list[str]) -> list[str]:
    """Recipe R: the fidelity bench's reference recipe (budget=reference), plus --recipe overrides."""
    return ["model=genome", f"model.genome={genome}", f"seed={seed}", *RECIPES["p1000"], *recipe]


def train_all(jobs: list[tuple[str, list[str]]], store: Path) -> dict[str, dict]:
    results = _runs.work_through(jobs, store)
    failed = [r for r in results.values() if r.get("status") != "ok"]
    if failed:
        raise SystemExit(
            f"error: {len(failed)} R trainings failed, e.g. {failed[0]['label']}: {failed[0].get('error')}"
        )
    return results


# -- 3. evaluation with evaluate.py ------------------------------------------------------------------------
def evaluate(record: dict, benchmarks: list[str], evals: Path) -> dict:
    """Set5/Set14 PSNR/SSIM of a trained run through evaluate.py; stored by run key (skipped when stored)."""
    stored = _runs.load_store(evals)
    if record["key"] in stored:
        return stored[record["key"]]
    ckpt = _runs.checkpoint(record)
    if ckpt is None:
        raise SystemExit(
            f"error: the weights of {record['label']} ({record['run_dir']}) are gone and it has no stored "
            f"evaluation: delete its line (key {record['key']}) from the run store to retrain it"
        )
    out = _runs.RUNS_DIR / record["key"] / "evaluate"
    args = [
        "model=genome",
        f"model.genome={record['genome']}",
        f"model.weights={ckpt}",
        f"data.benchmarks=[{','.join(benchmarks)}]",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.run(
        [sys.executable, "evaluate.py", *args], cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: evaluate.py failed for {record['label']}:\n{proc.stdout[-2000:]}")
    res = json.loads((out / "results.json").read_text())
    entry = {
        "key": record["key"],
        "label": record["label"],
        "datasets": res["datasets"],
        "params": res["params"],
        "mult_adds": res["mult_adds"],
    }
    _runs._append(entry, evals)
    return entry


def bicubic_scores(benchmarks: list[str]) -> dict[str, dict]:
    """PSNR/SSIM of PIL bicubic x2 under the same protocol (the floor every model must clear)."""
    from falsr.protocol.benchmarks import load_benchmark
    from falsr.protocol.metrics import psnr_ssim_y
    from falsr.protocol.resize import pil_bicubic_upscale

    data_dir = os.environ.get("FALSR_DATA_DIR", str(REPO / "data"))
    out = {}
    for name in benchmarks:
        scores = [psnr_ssim_y(pil_bicubic_upscale(p.lr, 2), p.hr) for p in load_benchmark(data_dir, name)]
        out[name] = {"psnr": float(np.mean([s[0] for s in scores])), "ssim": float(np.mean([s[1] for s in scores]))}
    return out


# -- 4. results ----------------------------------------------------------------------------------------
def export_weights(record: dict, name: str, zoo: Path) -> Path:
    """The seed-0 weights as a plain falsr .pt file (genome + state_dict, no optimizer state)."""
    from falsr.space.network import build_network
    from falsr.weights import load_weights, save_weights

    path = zoo / f"{name}.pt"
    net = load_weights(build_network(record["genome"], name=name), _runs.checkpoint(record))
    return save_weights(net, path)


def write_model_config(name: str, genome: str, note: str, conf_dir: Path, script: str = "bench/showdown.py") -> Path:
    from falsr.space.genome import model_config_text

    text = model_config_text(genome, name, [f"{name}: found by {script} ({note})."], f"e.g. zoo/{name}.pt")
    path = conf_dir / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def stats(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def report(
    rows: list[dict],
    bicubic: dict,
    benchmarks: list[str],
    search: dict,
    recipe: list[str],
    seeds: list[int],
    results: Path,
) -> str:
    lines = [
        "# bench/showdown.py",
        "",
        # curve points observe only (added to p1000 after round 1 ran): not part of the recipe
        f"Recipe R: `{' '.join(o for o in RECIPES['p1000'][:-1] if not o.startswith(_runs.OBSERVING))}` "
        "(= budget=reference)" + (f" with `{' '.join(recipe)}`" if recipe else "") + f", seeds {seeds}; "
        f"PSNR/SSIM: mean ± sample std over seeds (n = seeds), evaluated by evaluate.py (Y, 2-pixel border).",
        f"Search: `python search.py {' '.join(a for a in search.get('args', []) if not a.startswith('hydra.'))}`: "
        f"{search.get('candidates')} candidates ({search.get('trained_ok')} trained), "
        f"{search.get('wall_seconds')} s wall, {search.get('cpu_seconds')} CPU-s "
        f"(candidate trainings {search.get('train_seconds')} s).",
        "",
        "| model | mult-adds | params | "
        + " | ".join(f"{b} PSNR | {b} SSIM" for b in benchmarks)
        + " | seeds | genome |",
        "| --- | --- | --- | " + " | ".join("--- | ---" for _ in benchmarks) + " | --- | --- |",
    ]
    for row in rows:
        cells = []
        for b in benchmarks:
            cells.append(stats([e["datasets"][b]["psnr"] for e in row["evals"]]))
            cells.append(stats([e["datasets"][b]["ssim"] for e in row["evals"]], 4))
        lines.append(
            f"| {row['name']} | {row['mult_adds'] / 1e9:.1f}G | {row['params']:,} | "
            + " | ".join(cells)
            + f" | {len(row['evals'])} | `{row['genome']}` |"
        )
    lines.append(
        "| bicubic | - | - | "
        + " | ".join(f"{bicubic[b]['psnr']:.3f} | {bicubic[b]['ssim']:.4f}" for b in benchmarks)
        + " | - | - |"
    )
    lines.append("")
    by_name = {r["name"]: r for r in rows}
    for winner, ref in BUDGETS:
        ref_name = {conf: name for name, conf in RELEASED}[ref] + "(R)"
        if winner not in by_name or ref_name not in by_name:
            continue
        w, r = by_name[winner], by_name[ref_name]
        diffs = {
            b: np.mean([e["datasets"][b]["psnr"] for e in w["evals"]])
            - np.mean([e["datasets"][b]["psnr"] for e in r["evals"]])
            for b in benchmarks
        }
        verdict = "beats" if all(d > 0 for d in diffs.values()) else "does not beat"
        lines.append(
            f"* {winner} ({w['mult_adds'] / 1e9:.1f}G <= {r['mult_adds'] / 1e9:.1f}G) {verdict} {ref_name}: "
            + ", ".join(f"{b} {d:+.3f} dB" for b, d in diffs.items())
            + "."
        )
    for row in rows:
        if row.get("choice"):
            lines.append(f"* {row['name']}: {row['choice']}")
    lines.append("")
    lines.append("![PSNR against mult-adds](showdown.png)")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], bicubic: dict, benchmarks: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5 * len(benchmarks), 4), dpi=100, squeeze=False)
    for ax, b in zip(axes[0], benchmarks):
        for row in rows:
            psnr = [e["datasets"][b]["psnr"] for e in row["evals"]]
            released = row["name"].startswith("FALSR")
            ax.errorbar(
                row["mult_adds"] / 1e9,
                np.mean(psnr),
                yerr=np.std(psnr) if len(psnr) > 1 else None,
                fmt="s" if released else "o",
                color="tab:blue" if released else "tab:red",
                capsize=3,
            )
            ax.annotate(
                row["name"],
                (row["mult_adds"] / 1e9, np.mean(psnr)),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        finish_axes(
            ax,
            b,
            bicubic[b]["psnr"],
            "mult-adds (G, 480x480 LR)",
            f"{b}: all trained with recipe R (mean ± std over seeds)",
        )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def finish_axes(ax, benchmark: str, bicubic_psnr: float, xlabel: str, title: str) -> None:
    """The showdown plots' common axes: bicubic dashed, mult-adds in G on a log axis, legend, grid."""
    import matplotlib.ticker

    ax.axhline(bicubic_psnr, color="0.5", ls="--", label=f"bicubic {bicubic_psnr:.2f} dB")
    ax.set_xscale("log")
    ax.set_xticks([10, 20, 50, 100, 200])
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{benchmark} PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--round" in argv[:-1] and argv[argv.index("--round") + 1] == "2":  # round 2's entry, under this name too
        import showdown2

        i = argv.index("--round")
        return showdown2.main(argv[:i] + argv[i + 2 :])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round", type=int, choices=[1, 2], default=1, help="1: this script; 2: bench/showdown2.py")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "showdown")
    parser.add_argument(
        "--sweep",
        type=Path,
        default=REPO / "outputs" / "showdown" / "search",
        help="the search's sweep folder (git-ignored: checkpoints)",
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=6, help="front models per budget trained with R to choose from")
    parser.add_argument("--search", nargs="*", default=[], help="extra overrides of the search")
    parser.add_argument("--recipe", nargs="*", default=[], help="extra overrides of recipe R (e.g. a GPU's longer R)")
    parser.add_argument("--benchmarks", default="Set5,Set14")
    parser.add_argument("--zoo", type=Path, default=REPO / "zoo")
    parser.add_argument("--conf", type=Path, default=REPO / "conf" / "model")
    parser.add_argument("--store", type=Path, default=_runs.STORE, help="the run store (shared with proxy_fidelity)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="table and plot from stored results; train nothing")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    benchmarks = args.benchmarks.split(",")
    _runs.set_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    evals = args.results / "evals.jsonl"
    from falsr.space.cost import genome_cost

    if args.report:
        search = json.loads((args.results / "search" / "search_done.json").read_text())
    else:
        search = run_search(args.results, args.sweep, args.search, args.threads)

    # The choice: seed-0 R training of the best k front models per budget, winner by held-out PSNR.
    rows, chosen = [], {}
    for winner, ref in BUDGETS:
        budget = genome_cost(zoo_genome(ref)).mult_adds
        picks = front_under(args.results, budget, args.k, exclude={c["key"] for c in chosen.values()})
        if not picks:
            log(f"{winner}: no front model under {budget / 1e9:.1f}G")
            continue
        jobs = [
            (f"R/s{seeds[0]}/{winner}-candidate-{p['key'][:6]}", r_overrides(p["genome"], seeds[0], args.recipe))
            for p in picks
        ]
        trained = (
            train_all(jobs, args.store)
            if not args.report
            else {k: v for k, v in _runs.load_store(args.store).items() if k in {_runs.run_key(o) for _, o in jobs}}
        )
        scored = sorted(
            (
                (trained[_runs.run_key(o)]["val"]["holdout"]["psnr"], p)
                for (_, o), p in zip(jobs, picks)
                if _runs.run_key(o) in trained
            ),
            key=lambda t: -t[0],
        )
        if not scored:
            continue
        best_holdout, best = scored[0]
        chosen[winner] = best
        log(
            f"{winner}: {best['genome']} ({best['mult_adds'] / 1e9:.1f}G), held-out {best_holdout:.3f} dB after R "
            f"(of {len(scored)}: " + ", ".join(f"{h:.3f}" for h, _ in scored) + ")"
        )

    released_name = {conf: name for name, conf in RELEASED}
    models = [(f"{name}(R)", zoo_genome(conf), conf, None) for name, conf in RELEASED]
    for winner, best in chosen.items():
        models.append(
            (
                winner,
                best["genome"],
                winner,
                f"best held-out PSNR after R among the {args.k} best-proxy front models under "
                f"{released_name[dict(BUDGETS)[winner]]}'s "
                f"mult-adds; proxy {best['psnr']:.3f} dB",
            )
        )
    jobs = [(f"R/s{s}/{name}", r_overrides(g, s, args.recipe)) for s in seeds for name, g, _, _ in models]
    records = train_all(jobs, args.store) if not args.report else _runs.load_store(args.store)
    for name, genome, conf, note in models:
        evs = []
        for s in seeds:
            rec = records.get(_runs.run_key(r_overrides(genome, s, args.recipe)))
            if rec is None:
                continue
            rec = dict(rec, label=f"R/s{s}/{name}")
            evs.append(evaluate(rec, benchmarks, evals) if not args.report else _runs.load_store(evals).get(rec["key"]))
            if s == seeds[0] and not args.report:
                export_weights(rec, conf if note else f"{conf}_r", args.zoo)
        evs = [e for e in evs if e]
        if note and not args.report:
            write_model_config(conf, genome, note, args.conf)
        cost = genome_cost(genome)
        rows.append(
            {
                "name": name,
                "genome": genome,
                "mult_adds": cost.mult_adds,
                "params": cost.params,
                "evals": evs,
                "choice": note,
            }
        )
    bicubic = bicubic_scores(benchmarks)
    text = report(rows, bicubic, benchmarks, search, args.recipe, seeds, args.results)
    (args.results / "showdown.md").write_text(text)
    plot(rows, bicubic, benchmarks, args.results / "showdown.png")
    print(text)
    log(f"written {args.results / 'showdown.md'} and showdown.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
