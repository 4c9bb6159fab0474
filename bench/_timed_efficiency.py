"""Search efficiency at equal CPU time (``bench/search_efficiency.py --cpu-budget S --objective real|ranked|final``).

Every method (random search, plain NSGA-II, the hybrid, the hybrid with weight inheritance and/or the
predictor's pre-screening) runs the search's own ask/tell loop (falsr.search.generation: ``propose``,
``tell``; composed from conf/search/ as search.py composes it) with a real training objective of
bench/_objectives.py (``real``: 80 steps, ranks at chance; ``ranked``: the search's own evaluator), and goes on generation after generation until it has spent ``S`` CPU seconds:

* training seconds: ``time.process_time`` of each candidate's training (one torch thread, no loader
  workers, so this is the CPU the candidate cost, whatever else runs on the machine). A genome another
  method (or seed) already trained fresh is charged the seconds it took then: a cache hit is free for
  the bench, never for the method;
* search seconds: ``process_time`` of ``propose`` and ``tell`` (operators, controller, the predictor's
  fitting and predictions).

A run stops at the first candidate that would start after the budget is spent, mid-generation included: what
trains after it is never counted (the hypervolume is read at shares of the budget), so training it would only
cost time. Runs stored before this rule trained their last generation to the end; their hypervolumes are the
same, their "candidates trained" count also has those after the budget.

Over-cap genomes (the search's ``max_mult_adds``) are not trained, as in the search. With inheritance, a
child with trained parents starts from their weights (falsr.weights.inherit, as ``search.inherit=true`` does in
the search); to measure the bias this brings, such a child is also trained fresh, uncharged, and the
report compares the two. Runs are stored one JSON line each (``--store``), so the bench resumes and can
be split over processes (``--part i/n``); ``--report`` prints the tables from the store. A CPU second buys
different training on different machines (a CPU without AVX512-BF16 trains in fp32, several times slower per
step), so every run records the machine it ran on, and runs of two machines are never resumed into, nor reported
in, one comparison.

Each training composes its config from conf/ on disk while the code is already imported: do not edit the
working tree under a running bench (run it from a snapshot, e.g. a ``git worktree`` of the commit, with
``--store`` pointing where the results should go). More than ``_objectives.MAX_FAILED`` failed trainings
stop the bench with the last error (a failure costs ~0 s and would otherwise flood the run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import _objectives
from falsr.latency import device_name
from falsr.protocol.pipeline import fast_bf16
from falsr.search import HypervolumeBox, hypervolume
from falsr.search.generation import new_search, predictor_quality, propose, tell
from falsr.search.nsga import Individual
from falsr.space.cost import genome_cost

FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # hypervolume reported at these shares of the CPU budget


def run_once(method: str, composed, seed: int, budget: float) -> dict:
    """One search run of ``method`` until ``budget`` CPU seconds are spent; every candidate with its clock."""
    label, settings, toolbox, use_controller, inherit = composed
    state = new_search(settings, seed, use_controller, toolbox)
    cap = settings.constraints.max_mult_adds
    clock, history, weights, predictor = 0.0, [], {}, []
    tag = f"{method}-s{seed}"
    while clock < budget:
        start = time.process_time()
        batch = propose(state)
        clock += time.process_time() - start
        evaluated, trained = [], []
        for off in batch:
            if clock >= budget:  # spent mid-generation: what would train now counts at no fraction of the budget
                break
            cost = genome_cost(off.genome, settings.lr_size)
            row = {
                "key": off.genome.key,
                "genome": str(off.genome),
                "generation": state.generation,
                "origin": off.origin,
                "parents": list(off.parents),
                "predicted": off.predicted,
                "mult_adds": cost.mult_adds,
                "params": cost.params,
            }
            if cap is not None and cost.mult_adds > cap:
                result = _objectives.Result(_objectives.FAILED_PSNR, 0.0, None)
                row["status"] = "over_cap"
            else:
                sources = [weights[p] for p in off.parents if weights.get(p)] if inherit else []
                if sources:
                    result = _objectives.train_candidate(off.genome, sources, tag=tag)
                    row["fresh_psnr"] = _objectives.fresh(off.genome).psnr  # uncharged: the bias check
                else:
                    result = _objectives.fresh(off.genome, need_weights=inherit)
                row["status"] = "ok" if result.ok else "failed"
                weights[off.genome.key] = result.weights
            clock += result.seconds
            row.update(
                psnr=result.psnr,
                seconds=result.seconds,
                clock=clock,
                cached=result.cached,
                inherited_fraction=result.inherited_fraction,
                inherited_steps=result.inherited_steps,
                **({"measured_psnr": result.measured_psnr} if result.measured_psnr is not None else {}),
            )
            history.append(row)
            print(
                f"  {tag} gen {state.generation} #{len(history)}: {cost.mult_adds / 1e9:.1f}G "
                f"{row['status']}{' (cached)' if result.cached else ''} {result.psnr:.2f} dB; "
                f"{clock:.0f}/{budget:.0f} CPU s",
                flush=True,
            )
            evaluated.append(
                Individual(
                    off.genome,
                    (result.psnr, float(cost.mult_adds), float(cost.params)),
                    settings.constraints,
                    off.origin,
                )
            )
            trained.append(row["status"] == "ok")
        if len(evaluated) < len(batch):  # the budget ran out inside this generation: the run ends here
            break
        quality = predictor_quality(batch, evaluated, trained)
        if quality is not None:
            predictor.append({"generation": state.generation, **quality})
        start = time.process_time()
        tell(state, evaluated)
        clock += time.process_time() - start
    return {
        "method": method,
        "label": label,
        "seed": seed,
        "budget": budget,
        "clock": clock,
        "generations": state.generation,
        "history": history,
        "predictor": predictor,
    }


# Settings added after runs were stored, at their "off" value: left out of the id, so adding an option never orphans
# the store (a value that changes a run still changes its id).
# (node, key, off value); node None: a top-level setting. redraw_out_of_bounds is on by default today: the stored
# runs ran without it, so their report is reproduced with --search-overrides search.settings.redraw_out_of_bounds=false.
ADDED_OFF = (
    ("constraints", "min_mult_adds", None),
    ("constraints", "max_latency_ms", None),
    (None, "scale", 2),
    (None, "redraw_out_of_bounds", False),
)


def _settings_key(settings) -> dict:
    out = dataclasses.asdict(settings)
    for node, key, off in ADDED_OFF:
        where = out if node is None else out.get(node, {})
        if where.get(key, off) == off:
            where.pop(key, None)
    return out


def config_id(args, composed: dict) -> str:
    """What makes runs comparable: budget, population, objective and the composed settings of the methods in
    `composed` (one method: a run's own id; runs stored before that carry the id of all the methods run then)."""
    blob = json.dumps(
        {
            "budget": args.cpu_budget,
            "population": args.population,
            "cells": args.cells,
            "objective": _objectives.describe(),
            # n_cells: a search setting until the space became a config group (same ids as before)
            "settings": {m: {**_settings_key(c[1]), "n_cells": args.cells} for m, c in composed.items()},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def comparable_ids(args, composed: dict) -> dict[str, set[str]]:
    """For each method, the ids its stored runs may carry: its own id, or (runs stored before ids were per
    method) the id of any set of these methods that holds it. So adding a method to a comparison never
    orphans the runs of the others, and a run is only ever matched with its own method's settings."""
    names = sorted(composed)
    ids = {m: {config_id(args, {m: composed[m]})} for m in names}
    for mask in range(1, 2 ** len(names)):
        subset = [m for i, m in enumerate(names) if mask >> i & 1]
        legacy = config_id(args, {m: composed[m] for m in subset})
        for m in subset:
            ids[m].add(legacy)
    return ids


def this_machine() -> dict:
    """What a run's CPU seconds were measured on: the CPU, torch's vector ISA, and whether training ran in bf16
    (trainer.precision=auto)."""
    import torch

    return {
        "cpu": device_name(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "bf16": fast_bf16(),
        "torch": torch.__version__,
    }


def _machine_line(m: dict | None) -> str:
    if m is None:
        return "not recorded (runs stored before machines were)"
    return f"{m['cpu']}, {m['isa']}, torch {m['torch']}, training in {'bf16' if m['bf16'] else 'fp32'}"


def check_machines(runs: list[dict], store: Path, here: dict | None = None) -> None:
    """A SystemExit naming both machines when `runs` (and `here`, when given) come from more than one."""
    seen = {json.dumps(r.get("machine"), sort_keys=True) for r in runs}
    if here is not None:
        seen.add(json.dumps(here, sort_keys=True))
    if len(seen) > 1:
        first, second = (_machine_line(json.loads(m)) for m in sorted(seen)[:2])
        raise SystemExit(
            f"error: {store} holds runs of this configuration from another machine ({first} / {second}): CPU "
            "seconds are not comparable across machines; use another --store for this machine"
        )


def load(store: Path) -> list[dict]:
    if not store.is_file():
        return []
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def fresh_psnr(row: dict) -> float:
    """A candidate's PSNR trained fresh: the common currency of all methods (an inherited child's own PSNR
    also counts the training its inherited tensors had)."""
    return row.get("fresh_psnr", row["psnr"])


def hv_at(history: list[dict], box: HypervolumeBox, t: float, own: bool = False) -> float:
    """Hypervolume of what a run had evaluated by CPU time t, on fresh PSNR (own=True: the PSNR the search saw)."""
    return hypervolume(
        [
            (r["psnr"] if own else fresh_psnr(r), r["mult_adds"], r["params"])
            for r in history
            if r["clock"] <= t and r["status"] == "ok"
        ],
        box,
    )


def report(runs: list[dict], methods: list[str], budget: float) -> str:
    lines = []
    runs = [r for r in runs if r["method"] in methods]
    values = [fresh_psnr(h) for r in runs for h in r["history"] if h["status"] == "ok"]
    if not values:
        return "no finished runs in the store"
    # The PSNR floor is the 5th percentile, not the minimum: one diverged candidate (~14 dB) would otherwise
    # stretch the box and squash every difference that matters; candidates below it add nothing.
    box = dataclasses.replace(HypervolumeBox(), psnr_min=float(np.percentile(values, 5)), psnr_max=max(values))
    lines.append(f"Objective: {_objectives.describe()}.")
    if runs[0].get("machine") is not None:
        lines.append(f"Machine: {_machine_line(runs[0]['machine'])}.")
    lines.append(
        f"CPU budget {budget:.0f} s per run; hypervolume box PSNR {box.psnr_min:.2f}..{box.psnr_max:.2f} dB "
        "(5th percentile..maximum of the fresh PSNR of every run here), mult-adds 1G..1000G and params 5K..5M (log); ref = worst "
        "corner. HV is on each candidate's fresh PSNR (what the architectures found are worth under "
        "the common objective); the last HV column is on the PSNR the search itself saw, which for "
        "inherited children includes their inherited training (clipped at the box)."
    )
    lines.append("")
    lines.append(
        "| method | seeds | candidates trained (mean) | generations (mean) | "
        + " | ".join(f"HV @ {f:.0%} budget" for f in FRACTIONS)
        + " | HV sd @ 100% | best fresh PSNR (mean) | HV @ 100%, search's own PSNR |"
    )
    lines.append("| --- | --- | --- | --- | " + " | ".join("---" for _ in FRACTIONS) + " | --- | --- | --- |")
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        hv = [[hv_at(r["history"], box, f * budget) for f in FRACTIONS] for r in rs]
        final = [h[-1] for h in hv]
        own = [hv_at(r["history"], box, budget, own=True) for r in rs]
        n_ok = [sum(h["status"] == "ok" for h in r["history"]) for r in rs]
        best = [max(fresh_psnr(h) for h in r["history"] if h["status"] == "ok") for r in rs]
        lines.append(
            f"| {rs[0]['label']} (`{m}`) | {len(rs)} | {statistics.fmean(n_ok):.0f} | "
            f"{statistics.fmean(r['generations'] for r in rs):.1f} | "
            + " | ".join(f"{statistics.fmean(h[k] for h in hv):.4f}" for k in range(len(FRACTIONS)))
            + f" | {statistics.stdev(final) if len(final) > 1 else 0.0:.4f} | {statistics.fmean(best):.2f} | "
            f"{statistics.fmean(own):.4f} |"
        )
    inherited = [(h, r) for r in runs for h in r["history"] if "fresh_psnr" in h and h["status"] == "ok"]
    if inherited:
        lines.append("")
        lines.append("Weight inheritance, measured on every inherited child (also trained fresh, uncharged):")
        lines.append("")
        lines.append(
            "| method | inherited children | mean fraction inherited | PSNR gain over fresh (mean, dB) | "
            "tau(inherited, fresh) | tau(gain, inherited steps) | tau(gain, fraction) |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for m in methods:
            hs = [h for h, r in inherited if r["method"] == m]
            if len(hs) < 3:
                continue
            gain = [h["psnr"] - h["fresh_psnr"] for h in hs]
            lines.append(
                f"| `{m}` | {len(hs)} | {statistics.fmean(h['inherited_fraction'] for h in hs):.2f} | "
                f"{statistics.fmean(gain):+.3f} | "
                f"{kendalltau([h['psnr'] for h in hs], [h['fresh_psnr'] for h in hs]).statistic:.3f} | "
                f"{kendalltau(gain, [h['inherited_steps'] for h in hs]).statistic:.3f} | "
                f"{kendalltau(gain, [h['inherited_fraction'] for h in hs]).statistic:.3f} |"
            )
    logs = [(r["method"], p) for r in runs for p in r["predictor"]]
    if logs:
        lines.append("")
        lines.append("Predictor, held out (each pre-screened batch predicted before it trained):")
        lines.append("")
        lines.append("| method | pre-screened generations | tau (mean) | tau (min..max) | MAE (mean, dB) |")
        lines.append("| --- | --- | --- | --- | --- |")
        for m in methods:
            ps = [p for mm, p in logs if mm == m and math.isfinite(p["tau"])]
            if ps:
                taus = [p["tau"] for p in ps]
                lines.append(
                    f"| `{m}` | {len(ps)} | {statistics.fmean(taus):.3f} | {min(taus):.2f}..{max(taus):.2f} "
                    f"| {statistics.fmean(p['mae'] for p in ps):.3f} |"
                )
    lines.append("")
    lines.append("Per seed, HV at 100% of the budget:")
    lines.append("")
    for m in methods:
        rs = sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"])
        if rs:
            lines.append(
                f"- `{m}`: " + ", ".join(f"seed {r['seed']} {hv_at(r['history'], box, budget):.4f}" for r in rs)
            )
    return "\n".join(lines) + "\n"


def main(args, compose_method) -> int:
    common = [
        f"space.n_cells={args.cells}",
        f"search.settings.population_size={args.population}",
        f"search.settings.crowding={args.crowding}",
        *args.search_overrides,
    ]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    composed = {m: compose_method(m, common) for m in methods}
    if args.objective not in _objectives.OBJECTIVES:
        raise SystemExit(
            f"error: --cpu-budget measures real training time: use --objective {', '.join(_objectives.OBJECTIVES)}"
        )
    if args.cpu_budget is None:
        raise SystemExit("error: --report needs the --cpu-budget of the runs to report")
    store = args.store or Path(__file__).resolve().parent / "results" / f"search_efficiency_{args.objective}.jsonl"
    here = None if args.report else this_machine()
    # fresh trainings on disk beside the store: a run killed mid-way replays them when the bench starts again
    # (--report trains nothing, so it reads no cache)
    cache = None if args.report else store.with_suffix(".cache.jsonl")
    _objectives.use(args.objective, args.objective_overrides, cache=cache, identity=here)
    ids = comparable_ids(args, composed)
    stored = [r for r in load(store) if r.get("config") in ids.get(r.get("method"), ())]
    check_machines(stored, store, here)
    done = {(r["method"], r["seed"]) for r in stored}
    part, parts = (int(v) for v in args.part.split("/"))
    todo = [(m, s) for s in range(args.seeds) for m in methods]
    todo = [job for i, job in enumerate(todo) if i % parts == part and job not in done]
    if not args.report:
        print(f"objective: {_objectives.describe()}", flush=True)
        print(f"{len(todo)} runs to do ({len(stored)} stored, store {store})", flush=True)
        start = time.perf_counter()
        for method, seed in todo:
            run = run_once(method, composed[method], seed, args.cpu_budget)
            run["config"] = config_id(args, {method: composed[method]})
            run["machine"] = here
            store.parent.mkdir(parents=True, exist_ok=True)
            with open(store, "a") as f:
                f.write(json.dumps(run) + "\n")
            ok = [h for h in run["history"] if h["status"] == "ok"]
            print(
                f"{method} seed {seed}: {len(run['history'])} candidates ({len(ok)} trained), "
                f"{run['generations']} generations, {run['clock']:.0f} CPU s; best {max(h['psnr'] for h in ok):.2f} dB; "
                f"wall {time.perf_counter() - start:.0f} s; {_objectives.STATS.line()}",
                flush=True,
            )
    runs = [r for r in load(store) if r.get("config") in ids.get(r.get("method"), ())]
    text = report(runs, methods, args.cpu_budget)
    print(text)
    out = store.with_suffix(".md")
    out.write_text(
        f"# bench/search_efficiency.py --cpu-budget {args.cpu_budget:g} --objective {args.objective}\n\n" + text
    )
    print(f"written {out}")
    return 0
