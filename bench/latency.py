"""How well the per-part lookup table predicts measured latency, per backend and precision (issue 26).

On the 32 genomes of the fidelity panel (bench/proxy_fidelity.py PANEL: FALSR-A/B/C, then 29 drawn by the
search's operators, 5G..236G mult-adds at 480x480), for each backend and precision: the table's prediction
(sum of parts, falsr.latency.table) against the network measured end to end (falsr.latency.measure), as
Spearman's rho and the mean absolute percentage error, beside Spearman's rho of mult-adds against the same
measurements (does the table rank better than mult-adds?). In each run it also measures FALSR-A/B/C, the searched
models (conf/model/searched_*.yaml) and bicubic end to end (the README's table). Writes bench/results/latency.json
and latency.md.

Each network is measured twice, before the table is profiled and after it (`--passes 2`, the default): a shared
machine's speed drifts over minutes (on the 2-core EPYC here one cell took 394 ms, then 520 ms a few minutes
later), so a table and networks measured in different windows disagree by the drift, not by the table's error.
The table is compared with the mean of the two passes, which bracket it in time, and the two passes with each
other: that test-retest error is the floor no table can beat on the machine.

Resumable: each measurement is appended to bench/results/latency_runs.jsonl (keyed by the settings' fingerprint,
the genome and the pass) and the tables live in the latency cache, so a killed run continues where it stopped.

    python bench/latency.py                                  # the full bench: 32 genomes, 360x640, 1 thread
    python bench/latency.py --quick --out /tmp/latency.json  # 5 genomes at 24x32 (the test's)
    python bench/latency.py --rescore                        # the statistics again from the stored rows
    python bench/latency.py --runs compile/fp32 --passes 1   # one pass after the table (no test-retest)
Measure on a quiet machine: a one-line warning says when the runs spread too much to be trusted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch.nn.functional as F
import yaml
from scipy.stats import bootstrap, spearmanr
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from falsr import CONF_DIR
from falsr.latency import BACKENDS, LatencySettings, deploy_lr_size
from falsr.latency.measure import measure, measure_network, warn_if_noisy
from falsr.latency.table import LatencyTable, genome_parts
from falsr.space.cost import genome_cost
from falsr.space.genome import config_genome

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# eager and onnxruntime in fp32, eager in bf16 (onnxruntime's CPU provider has no bf16 convolution); torch.compile
# only on request: it compiles every part and every network (about 45 s per network on the 2-core machine here).
DEFAULT_RUNS = ("eager/fp32", "eager/bf16", "onnxruntime/fp32")
# The README's table: the released models, the searched ones (conf/model) and bicubic, measured end to end.
MODELS = ("falsr_a", "falsr_b", "falsr_c", "searched_a", "searched_b")
BICUBIC = "bicubic"


class BicubicUpscale(nn.Module):
    """The baseline a deployer would run: the LR Y channel upscaled by bicubic interpolation (ONNX: Resize, cubic)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, y):
        return F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)


def panel() -> list[tuple[str, str]]:
    from proxy_fidelity import PANEL

    return [(label, genome) for label, genome, _ in PANEL]


def _runs(path: Path) -> dict:
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: measured again
            out[(r["fingerprint"], r["genome"], r.get("pass", 2))] = r
    return out


def bench_one(settings: LatencySettings, genomes: list[tuple[str, str]], runs_path: Path, passes: int = 2) -> dict:
    """Prediction vs measurement on `genomes` under `settings`; every measurement appended to `runs_path`. With
    `passes` 2 the networks are measured before and after the table is profiled (the rows keep both)."""
    table = LatencyTable(settings)
    parts = list(dict.fromkeys(k for _, g in genomes for k in genome_parts(g)))
    done, rows, timings = _runs(runs_path), [], []
    before = (
        {g: _measured(settings, label, g, runs_path, done, timings, 1) for label, g in genomes} if passes == 2 else {}
    )
    table.profile(parts)
    for label, genome in genomes:
        after = _measured(settings, label, genome, runs_path, done, timings, 2)
        both = [before[genome], after] if before else [after]
        rows.append(
            {
                "label": label,
                "genome": genome,
                "measured_ms": statistics.fmean(m["ms"] for m in both),
                "spread": max(m["spread"] for m in both),
                "predicted_ms": table.predict(genome),
                "mult_adds": genome_cost(genome, settings.lr_size).mult_adds,
                **({"passes_ms": [m["ms"] for m in both]} if before else {}),
            }
        )
    warn_if_noisy(timings, settings, f"{len(timings)} networks ({settings.describe()})")
    return {
        **scores(rows),
        "median_spread": float(statistics.median(r["spread"] for r in rows)),
        "settings": settings.to_dict(),
        "fingerprint": settings.fingerprint(),
        "genomes": rows,
    }


def scores(rows: list[dict]) -> dict:
    """Table vs measured and mult-adds vs measured on the stored rows, each with its bootstrap 95% interval; with two
    passes also the table against each pass and the passes against each other (the machine's drift)."""
    meas = [r["measured_ms"] for r in rows]
    pred = [r["predicted_ms"] for r in rows]
    macs = [r["mult_adds"] for r in rows]
    out = {
        "n": len(rows),
        "spearman": float(_rho(pred, meas)),
        "spearman_ci95": _ci95(_rho, pred, meas),
        "mape": float(_mape(pred, meas)),
        "mape_ci95": _ci95(_mape, pred, meas),
        "spearman_mult_adds": float(_rho(macs, meas)),
        "spearman_mult_adds_ci95": _ci95(_rho, macs, meas),
    }
    if rows and all(len(r.get("passes_ms", ())) == 2 for r in rows):
        first, second = ([r["passes_ms"][i] for r in rows] for i in (0, 1))
        out |= {
            "mape_pass1": float(_mape(pred, first)),
            "mape_pass2": float(_mape(pred, second)),
            "retest_mape": float(_retest(first, second)),
            "retest_mape_ci95": _ci95(_retest, first, second),
            "retest_spearman": float(_rho(first, second)),
        }
    return out


def _rho(x, y) -> float:
    return spearmanr(x, y).statistic


def _mape(pred, meas) -> float:
    return statistics.fmean(abs(p - m) / m for p, m in zip(pred, meas))


def _retest(first, second) -> float:
    """The mean absolute difference of two measurements of each network, as a fraction of their mean."""
    return statistics.fmean(abs(a - b) / ((a + b) / 2) for a, b in zip(first, second))


MIN_CI_N = 10  # below it many resamples repeat one genome and a rank statistic is undefined (nan)


def _ci95(statistic, x, y) -> list[float] | None:
    """Bootstrap 95% interval (BCa) of statistic(x, y), the genomes resampled in pairs: n = 32 is a small sample.
    None below MIN_CI_N genomes (the quick run's 5)."""
    if len(x) < MIN_CI_N:
        return None
    res = bootstrap((x, y), statistic, paired=True, vectorized=False, n_resamples=2000, random_state=0)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _measured(
    settings: LatencySettings, label: str, genome: str, runs_path: Path, done: dict, timings: list, run_pass: int = 2
) -> dict:
    """The stored measurement of `genome` (or BICUBIC) under `settings` in pass `run_pass` (1: before the table is
    profiled, 2: after it; rows stored before passes existed were measured after it), measured and appended when
    missing."""
    key = settings.key()
    if (key, genome, run_pass) not in done:
        if genome == BICUBIC:
            h, w = settings.lr_size
            t = measure(BicubicUpscale(settings.scale), [(1, 1, h, w)], settings)
        else:
            t = measure_network(genome, settings)
        timings.append(t)
        done[(key, genome, run_pass)] = {
            "fingerprint": key,
            "genome": genome,
            "label": label,
            "pass": run_pass,
            "ms": t.ms,
            "spread": t.spread,
            "runs": t.runs,
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        with open(runs_path, "a") as fh:
            fh.write(json.dumps(done[(key, genome, run_pass)]) + "\n")
    return done[(key, genome, run_pass)]


def deployed_models(settings: LatencySettings, runs_path: Path) -> list[dict]:
    """FALSR-A/B/C, the searched models and bicubic measured end to end under `settings` (the README's table)."""
    done, timings, rows = _runs(runs_path), [], []
    for name in MODELS:
        cfg = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
        genome = str(config_genome(cfg))
        m = _measured(settings, cfg["name"], genome, runs_path, done, timings)
        cost = genome_cost(genome, settings.lr_size)
        rows.append(
            {
                "model": cfg["name"],
                "genome": genome,
                "ms": m["ms"],
                "spread": m["spread"],
                "mult_adds": cost.mult_adds,
                "params": cost.params,
            }
        )
    m = _measured(settings, "Bicubic", BICUBIC, runs_path, done, timings)
    rows.append({"model": "Bicubic", "genome": None, "ms": m["ms"], "spread": m["spread"], "mult_adds": 0, "params": 0})
    warn_if_noisy(timings, settings, f"{len(timings)} models ({settings.describe()})")
    return rows


def _ms(value: float) -> str:
    """Milliseconds to 3 significant digits without an exponent (4360, 650, 6.51)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _interval(ci: list[float] | None, fmt: str) -> str:
    return f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else ""


def _per_genome(row: dict) -> str:
    passes = row.get("passes_ms")
    both = f" ({_ms(passes[0])}, {_ms(passes[1])})" if passes else ""
    return f"{row['measured_ms']:.2f}{both} / {row['predicted_ms']:.2f}"


def markdown(result: dict) -> str:
    retest = any("retest_mape" in r for r in result["results"].values())
    lines = [
        "# Latency: the lookup table against measurement",
        "",
        f"Generated by `{result['command']}` ({result['date']}); {result['n_genomes']} genomes, LR input "
        f"{result['lr_size'][0]}x{result['lr_size'][1]}, batch 1, {result['threads']} thread(s), device "
        f"{result['device']}."
        + (
            f" Statistics recomputed from these stored measurements by `python bench/latency.py --rescore` "
            f"({result['rescored']})."
            if result.get("rescored")
            else ""
        ),
        "",
        "Intervals: bootstrap 95% (BCa, the genomes resampled in pairs, 2000 resamples, scipy.stats.bootstrap; none "
        f"below {MIN_CI_N} genomes).",
        "",
        "| backend / precision | n | Spearman (table vs measured) [95% CI] | MAPE [95% CI] | "
        "Spearman (mult-adds vs measured) [95% CI] | median spread |"
        + (
            " MAPE vs pass 1 / pass 2 | retest: pass 1 vs pass 2, mean abs. difference [95% CI] (Spearman) |"
            if retest
            else ""
        ),
        "| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if retest else ""),
    ]
    for name, r in result["results"].items():
        lines.append(
            f"| {name} | {r['n']} | {r['spearman']:.3f}{_interval(r['spearman_ci95'], '.3f')} | "
            f"{r['mape']:.1%}{_interval(r['mape_ci95'], '.1%')} | "
            f"{r['spearman_mult_adds']:.3f}{_interval(r['spearman_mult_adds_ci95'], '.3f')} | {r['median_spread']:.1%} |"
            + (
                f" {r['mape_pass1']:.1%} / {r['mape_pass2']:.1%} | {r['retest_mape']:.1%}"
                f"{_interval(r['retest_mape_ci95'], '.1%')} ({r['retest_spearman']:.3f}) |"
                if "retest_mape" in r
                else (" - | - |" if retest else "")
            )
        )
    lines += [
        "",
        (
            "Measured is the mean of two passes, one before the table was profiled and one after it (the second "
            "pass's time in brackets beside the first's)."
            if retest
            else "Measured after the table was profiled."
        ),
        "",
        "Per genome (ms, measured / predicted):",
        "",
        "| genome | mult-adds | " + " | ".join(result["results"]) + " |",
        "| --- | --- | " + " | ".join("---" for _ in result["results"]) + " |",
    ]
    first = next(iter(result["results"].values()))
    for i, g in enumerate(first["genomes"]):
        cells = [_per_genome(r["genomes"][i]) for r in result["results"].values()]
        lines.append(f"| {g['label']} | {g['mult_adds'] / 1e9:.2f}G | " + " | ".join(cells) + " |")
    if result.get("models"):
        runs = list(result["models"])
        lines += [
            "",
            "Released and searched models and bicubic, measured end to end (ms, median of the runs)"
            + (
                f"; the table redone for conf/model's models by `python bench/latency.py --models` "
                f"({result['models_remeasured']})"
                if result.get("models_remeasured")
                else ""
            )
            + ":",
            "",
            "| model | mult-adds | params | " + " | ".join(runs) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in runs) + " |",
        ]
        for i, m in enumerate(result["models"][runs[0]]):
            ms = " | ".join(_ms(result["models"][r][i]["ms"]) for r in runs)
            lines.append(f"| {m['model']} | {m['mult_adds'] / 1e9:.2f}G | {m['params'] / 1e3:.0f}K | {ms} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        default=list(DEFAULT_RUNS),
        help=f"backend/precision pairs, backends {', '.join(BACKENDS)}, precisions fp32 bf16",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr-size", type=int, nargs=2, default=list(deploy_lr_size()), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="5 genomes (FALSR-A/B/C first) at 24x32, 3 repeats")
    parser.add_argument(
        "--passes",
        type=int,
        choices=(1, 2),
        default=2,
        help="measure each network before and after the table is profiled (2), or only after it (1: half the time, "
        "no test-retest floor)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latency.json", help="latency.md is written beside it")
    parser.add_argument("--cache-dir", default=None, help="latency tables (default: $FALSR_LATENCY_DIR or ~/.cache)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="recompute the statistics of --out from the measurements it stores (no measuring) and rewrite it",
    )
    parser.add_argument(
        "--models",
        action="store_true",
        help="redo only --out's table of the released and searched models (conf/model changed), with its settings: "
        "a model already measured under them is read from the runs file, the panel's rows are kept",
    )
    args = parser.parse_args(argv)
    if args.rescore:
        return rescore(args.out)
    if args.models:
        return remeasure_models(args.out, args.cache_dir)
    genomes = panel()
    if args.quick:
        genomes, args.lr_size, args.repeats = genomes[:5], [24, 32], 3
    results, models, device = {}, {}, None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        backend, _, precision = run.partition("/")
        settings = LatencySettings.from_dict(
            {
                "backend": backend,
                "precision": precision or "fp32",
                "threads": args.threads,
                "lr_size": args.lr_size,
                "repeats": args.repeats,
                "cache_dir": args.cache_dir,
            }
        )
        print(f"{run}: {len(genomes)} genomes, {settings.describe()}", file=sys.stderr)
        results[run] = bench_one(settings, genomes, args.out.with_name(args.out.stem + "_runs.jsonl"), args.passes)
        models[run] = deployed_models(settings, args.out.with_name(args.out.stem + "_runs.jsonl"))
        device = settings.fingerprint()["device"]
        r = results[run]
        print(
            f"{run}: Spearman {r['spearman']:.3f}, MAPE {r['mape']:.1%}, mult-adds Spearman "
            f"{r['spearman_mult_adds']:.3f} (n={r['n']})"
            + (f", the two passes differ by {r['retest_mape']:.1%}" if "retest_mape" in r else "")
        )
    shown = " ".join(["python bench/latency.py", *(argv if argv is not None else sys.argv[1:])])
    result = {
        "command": shown,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": device,
        "lr_size": list(args.lr_size),
        "threads": args.threads,
        "repeats": args.repeats,
        "passes": args.passes,
        "n_genomes": len(genomes),
        "results": results,
        "models": models,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    return result


def remeasure_models(out: Path, cache_dir: str | None) -> dict:
    """The stored result's table of deployed models for today's conf/model (a new searched_a), under the stored
    result's settings; the panel's measurements and statistics stay as they are."""
    if not out.is_file():
        raise SystemExit(f"error: {out} does not exist: run `python bench/latency.py --out {out}` first")
    result = json.loads(out.read_text())
    for run in result["results"]:
        backend, _, precision = run.partition("/")
        settings = LatencySettings.from_dict(
            {
                "backend": backend,
                "precision": precision,
                "threads": result["threads"],
                "lr_size": result["lr_size"],
                # results written before "repeats" was stored ran with the default (or --quick's 3)
                "repeats": result.get("repeats", 3 if "--quick" in result["command"] else 7),
                "cache_dir": cache_dir,
            }
        )
        result["models"][run] = deployed_models(settings, out.with_name(out.stem + "_runs.jsonl"))
    result["models_remeasured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    return result


def rescore(out: Path) -> dict:
    """The statistics of a stored result recomputed from its per-genome rows (new statistics, same measurements)."""
    if not out.is_file():
        raise SystemExit(f"error: {out} does not exist: run `python bench/latency.py --out {out}` first")
    result = json.loads(out.read_text())
    for r in result["results"].values():
        r.update(scores(r["genomes"]))
    result["rescored"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    main()
