"""Search results for people: pareto.json, a Table-I-like Markdown table, pairwise front plots,
and the k front models chosen for full training by crowding distance (as the paper does).

What the PSNRs mean (the training budget of every candidate, the validation images) and bicubic's PSNR on the same
images come from ``report_context.json`` in the sweep folder, which the sweeper writes before the first job
(:func:`write_report_context`; bicubic is computed there once and kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: searches run headless
import matplotlib.pyplot as plt
from deap import base
from deap.tools import emo
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from falsr.search.journal import STATUS_FAILED, STATUS_OK, JournalRecord, rung_of
from falsr.search.nsga import Individual, nondominated_fronts, tiered_psnr
from falsr.search.objectives import RECORD_KEYS, active_objectives
from falsr.search.settings import Constraints
from falsr.space.genome import Genome

log = logging.getLogger(__name__)
PAIRS = (("mult_adds", "psnr"), ("params", "psnr"), ("mult_adds", "params"))  # the paper's objectives' pairs
LABELS = {"psnr": "PSNR (dB)", "mult_adds": "mult-adds", "params": "params", "latency_ms": "latency (ms)"}
COSTS = ("mult_adds", "params", "latency_ms")  # log axes, ticks as 12G, 25G, 50G (cost_label)


def objective_pairs() -> list[tuple[str, str]]:
    """The plotted pairs of the search's objectives (record keys): each cost against PSNR, then costs in pairs."""
    costs = [RECORD_KEYS[n] for n in active_objectives().costs]
    return [(c, "psnr") for c in costs] + [(a, b) for i, a in enumerate(costs) for b in costs[i + 1 :]]


CONTEXT_NAME = "report_context.json"


def cost_label(value: float, _pos: Any = None) -> str:
    """A cost for an axis tick or a table: 12G, 25G, 500M, 5.7K, 1T (a matplotlib FuncFormatter function)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def cost_ticks(low: float, high: float) -> tuple[float, ...]:
    """The mantissas of a log cost axis's ticks: 1, 2, 5 of each decade on a wide axis, denser on a narrow one
    (so that an axis spanning 80K..180K still shows three or more labelled ticks)."""
    decades = math.log10(max(high, 1e-300) / max(low, 1e-300)) if high > 0 and low > 0 else 3.0
    if decades < 0.6:
        return (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    if decades < 1.5:
        return (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    return (1.0, 2.0, 5.0)


def cost_axis(axis, low: float, high: float) -> None:
    """A readable log cost axis over [low, high]: ticks at 1, 2 and 5 of every decade (denser when the axis is
    narrow), labelled 10G, 20G, 50G."""
    axis.set_major_locator(LogLocator(base=10, subs=cost_ticks(low, high)))
    axis.set_major_formatter(FuncFormatter(cost_label))
    axis.set_minor_formatter(NullFormatter())


# -- what the PSNRs are measured on: report_context.json -----------------------------------------------------------


def bicubic_scores(pairs: Sequence[tuple[str, Path, Path | None]], scale: int = 2) -> dict:
    """Protocol PSNR / SSIM of bicubic x`scale` (PIL bicubic of the LR, the release's baseline; LR from its file or
    the MATLAB-compatible downscale of HR) on the images `pairs`, averaged over images like the validation."""
    from falsr.protocol.benchmarks import load_pair
    from falsr.protocol.metrics import psnr_ssim_y
    from falsr.protocol.resize import pil_bicubic_upscale

    scores = []
    for name, hr_path, lr_path in pairs:
        pair = load_pair(name, hr_path, lr_path, scale)
        scores.append(psnr_ssim_y(pil_bicubic_upscale(pair.lr, scale), pair.hr, border=scale))
    return {
        "psnr": sum(p for p, _ in scores) / len(scores),
        "ssim": sum(q for _, q in scores) / len(scores),
        "images": len(scores),
    }


def _pairs_key(pairs, scale: int) -> str:
    stamp = [
        (
            name,
            str(Path(hr).resolve()),
            Path(hr).stat().st_size,
            Path(hr).stat().st_mtime_ns,
            str(Path(lr).resolve()) if lr else None,
        )
        for name, hr, lr in pairs
    ]
    return hashlib.sha1(json.dumps([stamp, scale]).encode()).hexdigest()[:16]


TRAINING_GROUPS = ("budget", "trainer", "data", "optimizer", "scheduler", "module")  # overrides that change a budget


def write_report_context(
    sweep_dir: str | Path, job, overrides: Sequence[str] = (), rungs: Sequence[int] | None = None
) -> dict:
    """What a search's PSNRs mean, for its reports: the candidates' training budget and validation images (from a
    candidate job's config `job` and the command line's `overrides` of it; `rungs`: the steps of multi-fidelity
    promotion's rungs), and bicubic on the same images (computed once, kept in the sweep folder)."""
    from hydra.utils import instantiate

    from falsr.training.data import HOLDOUT

    sweep_dir = Path(sweep_dir)
    path = sweep_dir / CONTEXT_NAME
    old = json.loads(path.read_text()) if path.is_file() else {}
    data = instantiate(job.data)
    val_set = list(data.val_sets)[0]
    pairs = data.val_pairs(val_set)
    key = _pairs_key(pairs, data.scale)
    if val_set == HOLDOUT:
        images = (
            f"{len(pairs)} training images held out of {data.train_dir} (data.holdout={data.holdout}: no "
            "candidate trains on them)"
        )
    else:
        images = (
            f"{val_set}, {len(pairs)} image{'s' if len(pairs) != 1 else ''} "
            f"({Path(data.benchmarks_dir or '.') / val_set})"
        )
    choices = (job.get("hydra") or {}).get("runtime", {}).get("choices", {}) if "hydra" in job else {}
    context = {
        "steps": job.trainer.get("max_steps"),
        "rungs": [int(r) for r in rungs] if rungs else None,
        "batch_size": data.batch_size,
        "patch_size": data.patch_size,
        "budget": choices.get("budget") if choices else None,
        "val_set": val_set,
        "val_images": images,
        "overrides": [
            o
            for o in overrides
            if o.lstrip("+~").split("=")[0].split(".")[0] in TRAINING_GROUPS
            and not o.lstrip("+~").startswith(("data.train_dir", "data.benchmarks_dir", "data.cache"))
        ],
        "scale": data.scale,
        "pairs_key": key,
        "estimator": (
            f"held-out PSNR extrapolated to {int(job.search.get('estimate_at', 1000))} steps"
            if "search" in job and job.search.get("estimator") == "extrapolated"
            else None
        ),
        "bicubic": old["bicubic"]
        if old.get("pairs_key") == key and old.get("bicubic")
        else bicubic_scores(pairs, data.scale),
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(context, indent=2))
    return context


def read_report_context(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / CONTEXT_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _bicubic_psnr(context: dict | None) -> float | None:
    return ((context or {}).get("bicubic") or {}).get("psnr")


def measured_on(context: dict | None) -> list[str]:
    """The lines of pareto.md that say what its PSNRs are: budget, validation images, bicubic on them."""
    if not context:
        return []
    recipe = ([f"budget={context['budget']}"] if context.get("budget") else []) + list(context.get("overrides") or [])
    budget = f" (recipe: {' '.join(recipe)})" if recipe else ""
    border = context.get("scale", 2)
    if context.get("rungs"):
        rungs = ",".join(map(str, context["rungs"]))
        steps = f"the training steps of its highest rung, search.fidelity.rungs=[{rungs}] (the rung column)"
    else:
        steps = f"{context['steps']} training steps"
    patch = context["patch_size"]
    lines = [
        f"PSNR/SSIM: the evaluation protocol (Y channel, {border}-pixel border) on the validation "
        f"set `{context['val_set']}`: {context['val_images']}; each candidate after {steps}, batch "
        f"{context['batch_size']}, {patch}x{patch} HR patches{budget}. A search's short training: compare "
        "candidates with each other and with bicubic, not with published PSNRs of fully trained models.",
        "",
    ]
    if context.get("estimator"):
        lines += [
            f"The PSNR column is what the search ranked by: the {context['estimator']} (search.estimator; "
            "bench/proxy_fidelity.py measured it to rank like longer training better than the final PSNR); "
            "the journal keeps each measured PSNR (measured_psnr).",
            "",
        ]
    bicubic = context.get("bicubic")
    if bicubic:
        lines += [
            f"Bicubic on the same images: {bicubic['psnr']:.2f} dB / {bicubic['ssim']:.4f} (PIL bicubic x"
            f"{context.get('scale', 2)}, the protocol's baseline).",
            "",
        ]
    return lines


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def individuals(records: Sequence[JournalRecord], constraints: Constraints | None) -> list[Individual]:
    """Successfully trained candidates as Individuals (objectives PSNR and the search's costs); with multi-fidelity
    each at the rung of its record, compared by (rung, PSNR) as the search compares them (nsga.tiered_psnr)."""
    objectives = active_objectives()
    return [
        Individual(
            Genome.from_string(r.genome),
            objectives.record_vector(r, tiered_psnr(r.psnr, rung_of(r))),
            constraints,
            r.origin or "init",
        )
        for r in records
        if r.status == STATUS_OK
    ]


def pareto_records(records: Sequence[JournalRecord], constraints: Constraints | None) -> list[JournalRecord]:
    """The journal records on the first front (feasible ones win by constrained domination)."""
    inds = individuals(records, constraints)
    if not inds:
        return []
    by_key = {r.key: r for r in records if r.status == STATUS_OK}
    front = [by_key[i.genome.key] for i in nondominated_fronts(inds)[0] if i.fitness.feasible]
    if "latency" in (objectives := active_objectives()).names:  # the front shows the latency it was chosen by
        front = [replace(r, latency_ms=objectives.of_record(r)["latency"]) for r in front]
    return sorted(front, key=lambda r: r.mult_adds)


class _PsnrMultAdds(base.Fitness):
    weights = (1.0, -1.0)


class _Point:
    def __init__(self, record: JournalRecord):
        self.record = record
        self.fitness = _PsnrMultAdds((record.psnr, getattr(record, RECORD_KEYS[active_objectives().costs[0]])))


def choose_by_crowding(front: Sequence[JournalRecord], k: int) -> list[JournalRecord]:
    """The k models of the PSNR / first-cost front (mult-adds by default) with the largest crowding distance
    (paper: k = 4).

    The two extremes have infinite distance and always come first; ties keep front order.
    """
    points = [_Point(r) for r in front]
    two_d = emo.sortNondominated(points, len(points), first_front_only=True)[0] if points else []
    emo.assignCrowdingDist(two_d)
    ranked = sorted(two_d, key=lambda p: -p.fitness.crowding_dist)
    return [p.record for p in ranked[:k]]


def model_name(record: JournalRecord) -> str:
    return f"g{record.generation}-{record.key[:6]}"


def markdown_table(front: Sequence[JournalRecord], bicubic_psnr: float | None = None) -> str:
    """The front, best PSNR first; with `bicubic_psnr`, each model's gain over bicubic on the same images; with
    multi-fidelity (records with a ``rung``) highest rung first, each model's rung and training steps in a column,
    and a note that PSNRs of different rungs are not compared."""
    vs = bicubic_psnr is not None
    rungs = any(r.rung is not None for r in front)
    latency = any(r.latency_ms is not None for r in front)
    lines = [
        "| model | mult-adds | params | "
        + ("latency | " if latency else "")
        + "PSNR/SSIM | "
        + ("vs bicubic | " if vs else "")
        + ("rung (steps) | " if rungs else "")
        + "genome |",
        "| --- | --- | --- | --- | "
        + ("--- | " if latency else "")
        + ("--- | " if vs else "")
        + ("--- | " if rungs else "")
        + "--- |",
    ]
    for r in sorted(front, key=lambda r: (-rung_of(r), -r.psnr)):
        ssim = f"{r.ssim:.4f}" if isinstance(r.ssim, float) else "-"
        gain = f"{r.psnr - bicubic_psnr:+.2f} dB | " if vs else ""
        rung = f"{rung_of(r)} ({r.steps}) | " if rungs else ""
        ms = f"{r.latency_ms:.3g} ms | " if latency else ""
        lines.append(
            f"| {model_name(r)} | {r.mult_adds / 1e9:.1f}G | {r.params / 1e3:,.0f}K | {ms}"
            f"{r.psnr:.2f}/{ssim} | {gain}{rung}`{r.genome}` |"
        )
    if rungs:
        lines += [
            "",
            "PSNR after each model's highest rung (multi-fidelity promotion): a model of a higher rung "
            "trained longer, so its PSNR is not comparable with a lower rung's; the front compares "
            "models by (rung, PSNR) lexicographically.",
        ]
    return "\n".join(lines) + "\n"


def pareto_markdown(front: Sequence[JournalRecord], context: dict | None = None) -> str:
    """pareto.md: what the PSNRs are measured on (budget, images, bicubic there), then the table of the front."""
    head = ["# Pareto front", ""] + measured_on(context) if context else []
    return "\n".join(head) + ("\n" if head else "") + markdown_table(front, _bicubic_psnr(context))


def plot_fronts(
    records: Sequence[JournalRecord], front: Sequence[JournalRecord], out_dir: Path, context: dict | None = None
) -> list[Path]:
    """One PNG per objective pair (paper Fig. 6): every trained candidate coloured by its generation, the Pareto
    front ringed, bicubic on the same images as a line, costs on log axes with ticks like 12G, 25G, 50G."""
    ok = [r for r in records if r.status == STATUS_OK]
    objectives = active_objectives()
    if "latency" in objectives.names:
        ok = [replace(r, latency_ms=objectives.of_record(r)["latency"]) for r in ok]
    generations = [int(r.generation or 0) for r in ok]
    bicubic = _bicubic_psnr(context)
    where = ""
    if context:
        steps = (
            f"rungs of {'/'.join(map(str, context['rungs']))} steps"
            if context.get("rungs")
            else f"{context['steps']} training steps"
        )
        where = f"PSNR on {context['val_set']} ({context['val_images'].split(' (')[0].split(' held out')[0]}), {steps}"
    paths = []
    for x, y in objective_pairs():
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=100)
        points = ax.scatter(
            [getattr(r, x) for r in ok],
            [getattr(r, y) for r in ok],
            s=16,
            c=generations,
            cmap="viridis",
            vmin=0,
            vmax=max(generations, default=0) or 1,
            label="evaluated",
        )
        if front:
            pts = sorted((getattr(r, x), getattr(r, y)) for r in front)
            ax.scatter(
                *zip(*pts),
                s=70,
                facecolors="none",
                edgecolors="tab:red",
                linewidths=1.2,
                label=f"Pareto front ({len(objectives.names)} objectives)",
            )
        if bicubic is not None and y == "psnr":
            ax.axhline(bicubic, color="0.3", linestyle="--", linewidth=1, label=f"bicubic ({bicubic:.2f} dB)")
        if ok:
            bar = fig.colorbar(points, ax=ax, pad=0.02)
            bar.set_label("generation")
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
        ax.set_xlabel(LABELS[x])
        ax.set_ylabel(LABELS[y])
        for name, axis, scale, limits in (
            (x, ax.xaxis, ax.set_xscale, ax.get_xlim),
            (y, ax.yaxis, ax.set_yscale, ax.get_ylim),
        ):
            if name in COSTS and ok:  # (no point, e.g. nothing under the cap: no log axis to scale)
                scale("log")
                cost_axis(axis, *limits())
        if where and y == "psnr":
            ax.set_title(where, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"front_{y}_vs_{x.removesuffix('_ms')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_reports(
    out_dir: str | Path,
    records: Sequence[JournalRecord],
    constraints: Constraints | None,
    k: int = 4,
    context: dict | None = None,
) -> dict:
    """Write pareto.json, pareto.md and the plots; return the summary written to pareto.json. `context`: what the
    PSNRs are measured on (default: the folder's report_context.json, where the sweeper wrote one)."""
    out_dir = Path(out_dir)
    context = context if context is not None else read_report_context(out_dir)
    front = pareto_records(records, constraints)
    chosen = choose_by_crowding(front, k)
    summary = {
        "evaluated": len(records),
        "trained_ok": sum(r.status == STATUS_OK for r in records),
        "failed": sum(r.status == STATUS_FAILED for r in records),
        "front": front,
        "chosen_for_full_training": [r.genome for r in chosen],
    }
    if context:
        summary["measured_on"] = {
            name: context.get(name) for name in ("steps", "budget", "val_set", "val_images", "bicubic")
        }
    atomic_write(out_dir / "pareto.json", json.dumps({**summary, "front": [r.to_json() for r in front]}, indent=2))
    atomic_write(out_dir / "pareto.md", pareto_markdown(front, context))
    summary["plots"] = [str(p) for p in plot_fronts(records, front, out_dir, context)]
    return summary


FRONT_LATENCY = "front_latency"  # .json / .md beside pareto.json: the final front measured end to end


def write_front_latency(out_dir: str | Path, rows: Sequence[dict], settings) -> Path:
    """The final front's latency measured end to end next to the table's prediction (rows: genome, psnr,
    predicted_ms, measured_ms, spread), under `settings` (a LatencySettings): front_latency.json and .md."""
    out_dir = Path(out_dir)
    errors = [abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows if r["measured_ms"] > 0]
    mape = sum(errors) / len(errors) if errors else None
    data = {"settings": settings.to_dict(), "describe": settings.describe(), "mape": mape, "front": list(rows)}
    atomic_write(out_dir / f"{FRONT_LATENCY}.json", json.dumps(data, indent=2))
    lines = [
        f"# The final front measured end to end ({settings.describe()})",
        "",
        "| genome | PSNR (dB) | predicted (ms) | measured (ms) | error |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        err = (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"]
        lines.append(
            f"| `{r['genome']}` | {r['psnr']:.3f} | {r['predicted_ms']:.3g} | {r['measured_ms']:.3g} | {err:+.1%} |"
        )
    if mape is not None:
        lines += ["", f"Mean absolute percentage error of the table on this front: {mape:.1%}."]
    atomic_write(out_dir / f"{FRONT_LATENCY}.md", "\n".join(lines) + "\n")
    return out_dir / f"{FRONT_LATENCY}.json"
