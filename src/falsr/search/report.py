"""Search results for people: pareto.json, a Table-I-like Markdown table, pairwise front plots,
and the k front models chosen for full training by crowding distance (as the paper does)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: searches run headless
import matplotlib.pyplot as plt  # noqa: E402
from deap import base  # noqa: E402
from deap.tools import emo  # noqa: E402

from falsr.space.genome import Genome  # noqa: E402
from falsr.search.journal import STATUS_FAILED, STATUS_OK, rung_of  # noqa: E402
from falsr.search.nsga import Individual, nondominated_fronts, tiered_psnr  # noqa: E402
from falsr.search.settings import Constraints  # noqa: E402

PAIRS = (("mult_adds", "psnr"), ("params", "psnr"), ("mult_adds", "params"))
LABELS = {"psnr": "PSNR (dB)", "mult_adds": "mult-adds (G)", "params": "params (K)"}
SCALE = {"psnr": 1.0, "mult_adds": 1e-9, "params": 1e-3}


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def individuals(records: Sequence[dict], constraints: Optional[Constraints]) -> list[Individual]:
    """Successfully trained candidates as Individuals (objectives PSNR, mult-adds, params); with multi-fidelity
    each at the rung of its record, compared by (rung, PSNR) as the search compares them (nsga.tiered_psnr)."""
    return [Individual(Genome.from_string(r["genome"]), (tiered_psnr(r["psnr"], rung_of(r)), r["mult_adds"],
                                                          r["params"]), constraints,
                       r.get("origin") or "init") for r in records if r.get("status") == STATUS_OK]


def pareto_records(records: Sequence[dict], constraints: Optional[Constraints]) -> list[dict]:
    """The journal records on the first front (feasible ones win by constrained domination)."""
    inds = individuals(records, constraints)
    if not inds:
        return []
    by_key = {r["key"]: r for r in records if r.get("status") == STATUS_OK}
    front = [by_key[i.genome.key] for i in nondominated_fronts(inds)[0] if i.fitness.feasible]
    return sorted(front, key=lambda r: r["mult_adds"])


class _PsnrMultAdds(base.Fitness):
    weights = (1.0, -1.0)


class _Point:
    def __init__(self, record: dict):
        self.record = record
        self.fitness = _PsnrMultAdds((record["psnr"], record["mult_adds"]))


def choose_by_crowding(front: Sequence[dict], k: int) -> list[dict]:
    """The k models of the PSNR / mult-adds front with the largest crowding distance (paper: k = 4).

    The two extremes have infinite distance and always come first; ties keep front order.
    """
    points = [_Point(r) for r in front]
    two_d = emo.sortNondominated(points, len(points), first_front_only=True)[0] if points else []
    emo.assignCrowdingDist(two_d)
    ranked = sorted(two_d, key=lambda p: -p.fitness.crowding_dist)
    return [p.record for p in ranked[:k]]


def model_name(record: dict) -> str:
    return f"g{record['generation']}-{record['key'][:6]}"


def markdown_table(front: Sequence[dict]) -> str:
    """The front, best PSNR first; with multi-fidelity (records with a ``rung``) highest rung first, each model's
    rung and training steps in a column, and a note that PSNRs of different rungs are not compared."""
    rungs = any("rung" in r for r in front)
    lines = ["| model | mult-adds | params | PSNR/SSIM | " + ("rung (steps) | " if rungs else "") + "genome |",
             "| --- | --- | --- | --- | " + ("--- | " if rungs else "") + "--- |"]
    for r in sorted(front, key=lambda r: (-rung_of(r), -r["psnr"])):
        ssim = f"{r['ssim']:.4f}" if isinstance(r.get("ssim"), float) else "-"
        rung = f"{rung_of(r)} ({r.get('steps')}) | " if rungs else ""
        lines.append(f"| {model_name(r)} | {r['mult_adds'] / 1e9:.1f}G | {r['params'] / 1e3:,.0f}K | "
                     f"{r['psnr']:.2f}/{ssim} | {rung}`{r['genome']}` |")
    if rungs:
        lines += ["", "PSNR after each model's highest rung (multi-fidelity promotion): a model of a higher rung "
                      "trained longer, so its PSNR is not comparable with a lower rung's; the front compares "
                      "models by (rung, PSNR) lexicographically."]
    return "\n".join(lines) + "\n"


def plot_fronts(records: Sequence[dict], front: Sequence[dict], out_dir: Path) -> list[Path]:
    """One PNG per objective pair: every trained candidate, the Pareto front highlighted (paper Fig. 6)."""
    ok = [r for r in records if r.get("status") == STATUS_OK]
    paths = []
    for x, y in PAIRS:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.scatter([r[x] * SCALE[x] for r in ok], [r[y] * SCALE[y] for r in ok], s=12, c="0.6", label="evaluated")
        if front:
            pts = sorted((r[x] * SCALE[x], r[y] * SCALE[y]) for r in front)
            ax.scatter(*zip(*pts), s=24, c="tab:red", label="Pareto front (3 objectives)")
        ax.set_xlabel(LABELS[x])
        ax.set_ylabel(LABELS[y])
        if x != "psnr":
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"front_{y}_vs_{x}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_reports(out_dir: str | Path, records: Sequence[dict], constraints: Optional[Constraints],
                  k: int = 4) -> dict:
    """Write pareto.json, pareto.md and the plots; return the summary written to pareto.json."""
    out_dir = Path(out_dir)
    front = pareto_records(records, constraints)
    chosen = choose_by_crowding(front, k)
    summary = {
        "evaluated": len(records),
        "trained_ok": sum(r.get("status") == STATUS_OK for r in records),
        "failed": sum(r.get("status") == STATUS_FAILED for r in records),
        "front": front,
        "chosen_for_full_training": [r["genome"] for r in chosen],
    }
    atomic_write(out_dir / "pareto.json", json.dumps(summary, indent=2))
    atomic_write(out_dir / "pareto.md", markdown_table(front))
    summary["plots"] = [str(p) for p in plot_fronts(records, front, out_dir)]
    return summary
