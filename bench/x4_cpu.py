"""Does a CPU-trained x4 network beat bicubic?  FALSR-B's genome at x4, `budget=cpu`, against MATLAB bicubic.

    python bench/x4_cpu.py                 # train the missing runs, evaluate, choose, report (resumable)
    python bench/x4_cpu.py --report        # the report from what is stored

Each run is `python train.py model=falsr_b data.scale=4 budget=cpu seed=S <variant's overrides>`, then
`python evaluate.py` of its final weights on Set5 and Set14 at x4 (the MATLAB protocol of the published x3/x4 rows,
a 4-pixel border); the bicubic row is `python evaluate.py model=bicubic data.scale=4`.

Which `budget=cpu` setting at x4 is chosen, then reported on seeds that took no part in the choice:
1. every VARIANT (`budget=cpu` as it was, PyTorch's default init, and that with a 48x48 LR patch) trains on the
   --choice-seeds; the variant with the best mean PSNR on the held-out T91 images (each run's final validation;
   Set5/Set14 play no part) is chosen;
2. the chosen variant trains on the --seeds (fresh), whose Set5/Set14 rows are the reported result and the goal.
Results: bench/results/x4_cpu/x4_cpu.{json,md}; each run kept as runs/<variant>/seed<S>/{metrics,results}.json
(weights stay in the temporary run folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy import stats

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "x4_cpu"
SETS = ("Set5", "Set14")
GOAL_DB = 0.5  # issue 25: >= 0.5 dB over bicubic on Set5


def _run(script: str, *args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if proc.returncode:
        sys.exit(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")


def evaluate(out: Path, *args: str, threads: int) -> dict:
    if not (out / "results.json").is_file():
        _run(
            "evaluate.py",
            "data.scale=4",
            f"data.benchmarks=[{','.join(SETS)}]",
            f"hydra.run.dir={out}",
            *args,
            threads=threads,
        )
    return json.loads((out / "results.json").read_text())


# The settings compared at x4 (overrides after `budget=cpu`); "paper_init" is budget=cpu as it was when the
# issue's first x4 numbers were taken (N(0, 0.02) init, 32x32 LR patches).
VARIANTS = {
    "paper_init": [],
    "default_init": ["model.init_std=null"],
    "default_init_lr48": ["model.init_std=null", "data.patch_size=192"],
}


def train_run(variant: str, seed: int, threads: int) -> dict:
    """One run's metrics.json and results.json, kept under OUT/runs/<variant>/seed<S>/ (the resumable unit)."""
    keep = OUT / "runs" / variant / f"seed{seed}"
    if (keep / "results.json").is_file():
        return {"metrics": _read(keep / "metrics.json"), "results": _read(keep / "results.json")}
    overrides = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="x4_cpu_") as tmp:
        run_dir = Path(tmp) / "train"
        print(
            f"{variant} seed {seed}: train.py model=falsr_b data.scale=4 budget=cpu {' '.join(overrides)}", flush=True
        )
        _run(
            "train.py",
            "model=falsr_b",
            "data.scale=4",
            "budget=cpu",
            *overrides,
            f"seed={seed}",
            "save_weights=true",
            "logger=none",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
            threads=threads,
        )
        print(f"{variant} seed {seed}: evaluate.py on {', '.join(SETS)} ...", flush=True)
        results = evaluate(
            Path(tmp) / "eval", "model=falsr_b", f"model.weights={run_dir / 'weights.pt'}", threads=threads
        )
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "metrics.json").write_text((run_dir / "metrics.json").read_text())
        (keep / "results.json").write_text(json.dumps(results, indent=1))
    return {"metrics": _read(keep / "metrics.json"), "results": results}


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def stored(variant: str, seeds: list[int]) -> dict[int, dict]:
    out = {}
    for s in seeds:
        keep = OUT / "runs" / variant / f"seed{s}"
        if (keep / "results.json").is_file():
            out[s] = {"metrics": _read(keep / "metrics.json"), "results": _read(keep / "results.json")}
    return out


def choose(choice_seeds: list[int]) -> tuple[str | None, dict]:
    """The variant with the best mean held-out PSNR over the choice seeds (None until every variant has them all)."""
    table = {}
    for variant in VARIANTS:
        runs = stored(variant, choice_seeds)
        holdout = {s: r["metrics"]["val"]["holdout"]["psnr"] for s, r in runs.items()}
        table[variant] = {
            "holdout_psnr": {str(s): v for s, v in holdout.items()},
            "holdout_mean": statistics.fmean(holdout.values()) if holdout else None,
            "set5_psnr": {str(s): r["results"]["datasets"]["Set5"]["psnr"] for s, r in runs.items()},
            "train_seconds": {str(s): r["metrics"]["train_seconds"] for s, r in runs.items()},
            "complete": len(runs) == len(choice_seeds),
        }
    if not all(t["complete"] for t in table.values()):
        return None, table
    return max(table, key=lambda v: table[v]["holdout_mean"]), table


def gains(runs: dict[int, dict], bicubic: dict) -> dict:
    rows = {}
    for name in SETS:
        base = bicubic["datasets"][name]["psnr"]
        psnrs = [r["results"]["datasets"][name]["psnr"] for r in runs.values()]
        g = [p - base for p in psnrs]
        row = {
            "bicubic_psnr": base,
            "bicubic_ssim": bicubic["datasets"][name]["ssim"],
            "psnr": {str(s): r["results"]["datasets"][name]["psnr"] for s, r in runs.items()},
            "ssim": {str(s): r["results"]["datasets"][name]["ssim"] for s, r in runs.items()},
            "gain_mean": statistics.fmean(g) if g else None,
            "gain_std": statistics.stdev(g) if len(g) > 1 else None,
        }
        if len(g) > 1:  # a 95% t interval of the mean gain over the seeds
            half = stats.t.ppf(0.975, len(g) - 1) * row["gain_std"] / len(g) ** 0.5
            row["gain_ci95"] = [row["gain_mean"] - half, row["gain_mean"] + half]
        rows[name] = row
    return rows


def report(choice_seeds: list[int], seeds: list[int], bicubic: dict) -> dict:
    chosen, choice = choose(choice_seeds)
    runs = stored(chosen, seeds) if chosen else {}
    rows = gains(runs, bicubic)
    set5 = rows["Set5"]
    met = len(runs) == len(seeds) and min(set5["psnr"].values()) - set5["bicubic_psnr"] >= GOAL_DB
    first = next(iter(runs.values()))["results"] if runs else None
    result = {
        "command": "python bench/x4_cpu.py",
        "model": "falsr_b (FALSR-B's genome) at x4",
        "budget": "cpu",
        "variants": VARIANTS,
        "choice_seeds": choice_seeds,
        "choice": choice,
        "chosen": chosen,
        "seeds": list(runs),
        "mult_adds_lr_size": first["mult_adds_lr_size"] if first else None,
        "mult_adds": first["mult_adds"] if first else None,
        "params": first["params"] if first else None,
        "sets": rows,
        "goal": f">= {GOAL_DB} dB over bicubic on Set5 at every reported seed",
        "goal_met": met,
    }
    lines = [
        "# bench/x4_cpu.py",
        "",
        f"`{result['command']}` wrote this: FALSR-B's genome built at x4 (a 1x1 projection of the residual), "
        "trained with `budget=cpu` (1000 steps of batch 16) on T91; Y-PSNR/SSIM with the MATLAB protocol and a "
        "4-pixel border, against `evaluate.py model=bicubic data.scale=4`.",
        "",
        f"## The choice (seeds {', '.join(map(str, choice_seeds))}: held-out T91 PSNR decides)",
        "",
        "| variant | overrides | held-out PSNR per seed | mean | Set5 per seed (not used to choose) | "
        "train s per seed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for variant, t in choice.items():
        mean = f"{t['holdout_mean']:.3f}" if t["holdout_mean"] is not None else "-"
        lines.append(
            f"| {variant}{' (chosen)' if variant == chosen else ''} | `{' '.join(VARIANTS[variant]) or '-'}` | "
            + ", ".join(f"{s}: {v:.3f}" for s, v in t["holdout_psnr"].items())
            + f" | {mean} | "
            + ", ".join(f"{s}: {v:.3f}" for s, v in t["set5_psnr"].items())
            + " | "
            + ", ".join(f"{s}: {v:.0f}" for s, v in t["train_seconds"].items())
            + " |"
        )
    lines += ["", f"## The result (fresh seeds {', '.join(map(str, seeds))}, `{chosen or 'not chosen yet'}`)", ""]
    if runs:
        lines += [
            f"{result['params']:,} params, {result['mult_adds'] / 1e9:.2f}G mult-adds at a "
            f"{result['mult_adds_lr_size'][0]}x{result['mult_adds_lr_size'][1]} LR input.",
            "",
            "| set | bicubic (dB / SSIM) | " + " | ".join(f"seed {s}" for s in runs) + " | gain, mean [95% CI] |",
            "| --- | --- | " + " | ".join("---" for _ in runs) + " | --- |",
        ]
        for name, row in rows.items():
            ci = row.get("gain_ci95")
            gain = f"{row['gain_mean']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            lines.append(
                f"| {name} | {row['bicubic_psnr']:.3f} / {row['bicubic_ssim']:.4f} | "
                + " | ".join(f"{row['psnr'][str(s)]:.3f} / {row['ssim'][str(s)]:.4f}" for s in runs)
                + f" | {gain} |"
            )
        gains_set5 = ", ".join(f"{s}: {p - set5['bicubic_psnr']:+.3f}" for s, p in set5["psnr"].items())
        lines += ["", f"Set5 gain per seed: {gains_set5}."]
    else:
        lines.append("Not trained yet.")
    lines += ["", f"Goal ({result['goal']}): {'met' if met else 'not met'}."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "x4_cpu.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "x4_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice-seeds", default="0,1,2", help="seeds that choose the variant (never reported)")
    parser.add_argument("--seeds", default="3,4,5", help="fresh seeds of the reported result")
    parser.add_argument("--threads", type=int, default=2, help="OMP threads of each training and evaluation")
    parser.add_argument("--report", action="store_true", help="write the report from what is stored; train nothing")
    args = parser.parse_args()
    choice_seeds = [int(s) for s in args.choice_seeds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if set(seeds) & set(choice_seeds):
        parser.error(
            f"--seeds {args.seeds} overlap --choice-seeds {args.choice_seeds}: a reported seed must not choose"
        )
    bicubic = evaluate(OUT / "bicubic", "model=bicubic", threads=args.threads)
    if not args.report:
        for variant in VARIANTS:
            for seed in choice_seeds:
                train_run(variant, seed, args.threads)
        chosen, _ = choose(choice_seeds)
        print(f"chosen on held-out PSNR: {chosen}", flush=True)
        for seed in seeds:
            train_run(chosen, seed, args.threads)
    report(choice_seeds, seeds, bicubic)


if __name__ == "__main__":
    main()
