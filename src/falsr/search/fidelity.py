"""Multi-fidelity promotion inside the search: successive halving (asynchronous, as ASHA) on NSGA-II's order.

With ``search.fidelity.rungs=[r0, r1, ...]`` every new candidate trains to ``r0`` steps (rung 0). After each
generation's rung-0 evaluations the driver promotes, rung after rung: the candidates journaled ``ok`` at rung
r (of every generation so far) are ordered as NSGA-II's survival orders them, non-dominated rank (constrained
domination on PSNR at rung r, mult-adds, params) then crowding distance, and those of the first
floor(n_r / eta) not yet promoted continue to rung r + 1. Ranking by fronts, not by PSNR alone, lets each cost
band promote its best instead of only the largest models; taking the top of everything a rung holds (not of one
generation) is ASHA's rule, so a resumed search, reading the same journal, promotes the same candidates.

A promotion is an ordinary Hydra job through the search's launcher: ``ckpt_path=<its last checkpoint of rung
r>`` and ``trainer.max_steps=<r_{r+1}>``. Continuing is meaningful because every job of the search runs one
schedule (:func:`job_overrides`): a schedule's ``total_steps`` is the last rung, and an epoch (hence a
validation and a checkpoint) ends on every rung, so a run stopped at rung 0 and continued to rung 1 follows,
batch for batch and learning rate for learning rate, the one longer run (tests/test_search_fidelity.py).

NSGA-II then sees each candidate at its highest rung, compared lexicographically by (rung, PSNR):
:func:`falsr.search.nsga.tiered_psnr` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from falsr.errors import UserError
from falsr.search.journal import STATUS_OK, JournalRecord, rung_of
from falsr.search.nsga import Individual, assign_rank_and_crowding
from falsr.search.settings import Constraints, Fidelity


def promotion_order(
    records: Sequence[JournalRecord], constraints: Constraints | None = None, crowding: str = "improved"
) -> list[JournalRecord]:
    """Records of one rung, best first: non-dominated rank, then crowding distance (larger first), then journal
    order (NSGA-II's crowded comparison, :func:`falsr.search.nsga.assign_rank_and_crowding`)."""
    from falsr.search.objectives import active_objectives
    from falsr.space.genome import Genome

    objectives = active_objectives()
    inds = [
        Individual(Genome.from_string(r.genome), objectives.record_vector(r), constraints, r.origin or "init")
        for r in records
    ]
    assign_rank_and_crowding(inds, crowding)
    order = sorted(range(len(inds)), key=lambda i: (inds[i].fitness.rank, -inds[i].fitness.crowding_dist))
    return [records[i] for i in order]


def promotions(
    records: Sequence[JournalRecord],
    rung: int,
    eta: int,
    constraints: Constraints | None = None,
    crowding: str = "improved",
) -> list[JournalRecord]:
    """The rung-``rung`` records to promote now: the first floor(n / eta) of the rung's :func:`promotion_order`
    (n: the candidates journaled ok at that rung) that have no record at rung + 1 yet (promoted before, whether
    that run succeeded or failed)."""
    at: dict[str, JournalRecord] = {}
    promoted = set()
    for r in records:
        if rung_of(r) == rung and r.status == STATUS_OK:
            at[r.key] = r
        elif rung_of(r) == rung + 1:
            promoted.add(r.key)
    ranked = promotion_order(list(at.values()), constraints, crowding)
    return [r for r in ranked[: len(ranked) // eta] if r.key not in promoted]


def rung_overrides(rung: int, steps: int, ckpt_path: str | None = None, promoted_in: int | None = None) -> list[str]:
    """The overrides that make a candidate job a run to ``steps`` at ``rung`` (continued from ``ckpt_path``)."""
    out = [f"trainer.max_steps={int(steps)}", f"+candidate.rung={int(rung)}"]
    if ckpt_path is not None:
        out += [f"ckpt_path='{ckpt_path}'", f"+candidate.promoted_in={int(promoted_in or 0)}"]
    return out


def job_overrides(fidelity: Fidelity, job) -> list[str]:
    """Overrides shared by every job of a multi-fidelity search, from one composed job config ``job``; a bad
    combination is a one-line error before any job starts.

    * ``data.samples_per_epoch`` = gcd(rungs) x ``data.batch_size``, ``trainer.check_val_every_n_epoch=1`` and
      ``trainer.max_epochs=-1``: an epoch ends on every rung, so each rung ends with a validation and a Lightning
      checkpoint, a continued run draws the longer run's patches, and only the rung's steps stop a run.
    * ``scheduler.total_steps`` (where the schedule has one, e.g. warmup_cosine) = the last rung: every rung is a
      point on one schedule, the one of the longest run.
    * ``callbacks.model_checkpoint.save_last=true``: the checkpoint a promotion continues from.
    """
    rungs = list(fidelity.rungs)
    shown = "[" + ",".join(str(r) for r in rungs) + "]"
    budget = int(job.trainer.get("max_steps") or 0)
    if budget <= 0:
        raise UserError(
            f"search.fidelity.rungs={shown} counts training steps, and this budget counts epochs "
            f"(trainer.max_steps={budget}); set trainer.max_steps to the last rung or more"
        )
    if rungs[-1] > budget:
        raise UserError(
            f"search.fidelity.rungs={shown}: rung {rungs[-1]} is beyond the budget's trainer.max_steps="
            f"{budget}; lower the rung or raise trainer.max_steps (or choose a longer budget, e.g. "
            "budget=reference)"
        )
    scheduler = job.get("scheduler") or {}
    warmup = int(scheduler.get("warmup_steps") or 0) if "warmup_steps" in scheduler else 0
    if warmup and rungs[0] <= warmup:
        raise UserError(
            f"search.fidelity.rungs={shown}: rung 0 ({rungs[0]} steps) ends inside the schedule's "
            f"warm-up (scheduler.warmup_steps={warmup}), where nothing is ranked yet; raise the first "
            "rung or lower scheduler.warmup_steps"
        )
    if (job.get("callbacks") or {}).get("model_checkpoint") is None:
        raise UserError(
            "search.fidelity.rungs: a promoted candidate continues from its checkpoint, and "
            "callbacks.model_checkpoint is off; turn it back on or set search.fidelity.rungs=[]"
        )
    out = [
        f"data.samples_per_epoch={math.gcd(*rungs) * int(job.data.batch_size)}",
        "trainer.check_val_every_n_epoch=1",
        "trainer.max_epochs=-1",
        "callbacks.model_checkpoint.save_last=true",
    ]
    if "total_steps" in scheduler:
        out.append(f"scheduler.total_steps={rungs[-1]}")
    return out
