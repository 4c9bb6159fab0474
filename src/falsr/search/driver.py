"""The search loop behind the Hydra sweeper: ask the operators, launch jobs, tell the fitnesses.

Hydra-agnostic except for the `launch` callable it is given (a Hydra launcher's `launch`), so the
same loop runs jobs in-process, on joblib workers, on SLURM through submitit or on Ray.
State that survives a kill: the journal (one line per finished candidate, written by the jobs; per candidate
and rung with multi-fidelity promotion, :mod:`falsr.search.fidelity`), and `search_state.pt`, written
atomically after every ask and every tell. Promotions are recomputed from the journal, so a resumed search
promotes the same candidates and never trains a (candidate, rung) twice.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from falsr.errors import UserError, disk_full, disk_full_error
from falsr.search.callbacks import job_outcome
from falsr.search.fidelity import promotions, rung_overrides
from falsr.search.generation import Offspring, SearchState, new_search, predictor_quality, propose, tell
from falsr.search.journal import JOURNAL_NAME, STATUS_FAILED, STATUS_OK, UNTRAINED, Journal, JournalRecord, rung_of
from falsr.search.nsga import Individual, hypervolume, tiered_psnr
from falsr.search.objectives import active_objectives
from falsr.search.report import pareto_records, write_front_latency, write_reports
from falsr.search.settings import Fidelity, SearchConfig, bound_violation
from falsr.space.cost import DEFAULT_LR_SIZE
from falsr.space.genome import Genome, active_space, space_from_config

log = logging.getLogger(__name__)
STATE_NAME = "search_state.pt"
PREDICTOR_LOG = "predictor.jsonl"  # one line per pre-screened generation: the predictor's held-out tau and MAE
# Brackets of mult-adds (at the search's LR size) for the "best PSNR per cost" summary line.
BRACKETS = (10e9, 50e9, 100e9, 250e9, math.inf)
# The worst cost a failed candidate gets where nothing has been evaluated yet (search.objectives).
WORST_COST = {"mult_adds": 1e12, "params": 1e7, "latency": 1e6}

Launch = Callable[[Sequence[Sequence[str]], int], Sequence]


def candidate_overrides(
    off: Offspring,
    generation: int | None,
    inherit_from: Sequence[str] = (),
    save_weights: bool = False,
    lr_size: Sequence[int] = DEFAULT_LR_SIZE,
) -> list[str]:
    """The overrides of one train.py job of the search (the only place they are built): its genome, the LR size
    its costs are computed at (the search's ``settings.lr_size``, so the journal and the selection agree), its
    journal fields (``+candidate.*``; ``generation=None``, e.g. a full training after the search: none, so the
    journal callback leaves the job alone) and, with weight inheritance, its parents' weights files and
    ``save_weights`` for its own children."""
    g = str(off.genome)

    def quoted(values):  # a list of strings for Hydra: keys like 1e5.. stay strings
        return "[" + ",".join(f"'{v}'" for v in values) + "]"

    out = ["model=genome", f"model.genome={g}", "module.cost_lr_size=[" + ",".join(str(int(v)) for v in lr_size) + "]"]
    if generation is not None:
        out += [
            f"+candidate.key={off.genome.key}",
            f"+candidate.genome={g}",
            f"+candidate.generation={generation}",
            f"+candidate.origin={off.origin}",
            f"+candidate.parents={quoted(off.parents)}",
        ]
        if off.predicted is not None:
            out.append(f"+candidate.predicted_psnr={off.predicted:.6f}")
    if save_weights:
        out.append("save_weights=true")
    if inherit_from:
        out.append(f"model.inherit_from={quoted(inherit_from)}")
    return out


def lost_job(job_return, sweep_dir: Path) -> str:
    """The journal's error for a job that died before its callback could journal it; a job stopped by a full disk
    is no result of its candidate: the search stops (DiskFullError), and a resume trains the candidate."""
    error = job_outcome(job_return)[1]
    if (full := disk_full(error)) is not None:
        raise disk_full_error(sweep_dir, full) from None
    return f"no result from the job ({type(error).__name__}: {error})"


def atomic_save(obj, path: Path) -> None:
    """Through a temporary file and a rename: a kill or a full disk midway leaves the previous file whole. (The
    bytes are written from Python, so a full disk is an OSError ENOSPC, not torch's errno-less RuntimeError.)"""
    tmp = path.with_name(path.name + ".tmp")
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


class SearchDriver:
    """The search of ``search`` (the ``search`` config node, checked: :func:`falsr.search.hydra_glue.search_config`)
    in ``sweep_dir``. What only the run knows comes as arguments: ``extra_overrides``, added to every candidate job
    (the command line's, ``hydra.sweep.dir`` on a resume, the job time limit), and with multi-fidelity
    ``fidelity_overrides``, added to every job too (:func:`falsr.search.fidelity.job_overrides`)."""

    def __init__(
        self,
        sweep_dir: str | Path,
        search: SearchConfig,
        launch: Launch,
        extra_overrides: Sequence[str] = (),
        fidelity_overrides: Sequence[str] = (),
        on_generation: Callable[[dict], None] | None = None,
    ):
        self.dir = Path(sweep_dir)
        self.search = search
        self.settings = search.settings  # the population's, the operators' and the constraints' (SearchSettings)
        self.extra_overrides = tuple(extra_overrides)
        self.fidelity_overrides = tuple(fidelity_overrides)
        self.launch = launch
        self.on_generation = on_generation
        self.journal = Journal(self.dir / JOURNAL_NAME)
        self.state_path = self.dir / STATE_NAME
        self.next_job = 0

    # -- state -------------------------------------------------------------------------------------
    def _save(self, state: SearchState, pending: list[Offspring] | None) -> None:
        atomic_save(
            {
                "state": state.to_dict(),
                "next_job": self.next_job,
                "space": active_space().to_dict(),  # its genomes' indices mean cells of this space
                "objectives": list(active_objectives().names),
                "fidelity": asdict(self.search.fidelity),
                "pending": None
                if pending is None
                else [(str(o.genome), o.origin, list(o.parents), o.predicted) for o in pending],
            },
            self.state_path,
        )

    def _load_or_start(self, resume: bool) -> tuple[SearchState, list[Offspring] | None]:
        if self.state_path.is_file() or (resume and self.journal.records()):
            if not resume:
                raise UserError(
                    f"{self.dir} already holds a search: continue it with search.resume={self.dir}, "
                    "or choose another hydra.sweep.dir"
                )
            data = self._read_state()
            if data is None:  # damaged or missing, with a journal: search.resume_from_journal=true
                return self._from_journal(), None
            if (ran := space_from_config(data.get("space"))) != active_space():
                raise UserError(
                    f"search.resume={self.dir}: that search ran in another search space; resume it in "
                    f"the same one: {ran.overrides()}"
                )
            ran = data.get("objectives", ["psnr", "mult_adds", "params"])
            if tuple(ran) != active_objectives().names:
                raise UserError(
                    f"search.resume={self.dir}: that search ran with search.objectives=[{','.join(ran)}]; "
                    "resume it with the same"
                )
            ran_fidelity = Fidelity(**data.get("fidelity", {}))
            if ran_fidelity != self.search.fidelity:
                shown = "[" + ",".join(str(r) for r in ran_fidelity.rungs) + "]"
                raise UserError(
                    f"search.resume={self.dir}: that search ran with search.fidelity.rungs={shown} "
                    f"search.fidelity.eta={ran_fidelity.eta}; resume it with the same"
                )
            state = SearchState.from_dict(data["state"])
            if state.settings != self.settings:
                log.warning("search.settings differ from the resumed search's; the resumed settings are kept")
            if state.toolbox_config != self.search.toolbox:
                log.warning("search.toolbox differs from the resumed search's; the resumed toolbox is kept")
            self.next_job = max(data["next_job"], self._max_job_dir() + 1)
            pending = (
                None
                if data["pending"] is None
                else [  # (genome, origin[, parents, predicted])
                    Offspring(Genome.from_string(p[0]), p[1], *([tuple(p[2]), p[3]] if len(p) > 2 else []))
                    for p in data["pending"]
                ]
            )
            log.info(
                f"resuming {self.dir} at generation {state.generation} "
                f"({len(self.journal.latest())} candidates already journaled)"
            )
            return state, pending
        if resume:
            raise UserError(f"search.resume={self.dir}: no {STATE_NAME} there, so no search to resume")
        self.dir.mkdir(parents=True, exist_ok=True)
        return new_search(self.settings, self.search.seed, self.search.use_controller, self.search.toolbox), None

    def _read_state(self) -> dict | None:
        """The state file's contents; None where it is damaged or missing and ``search.resume_from_journal``
        allows rebuilding it from the journal, else a one-line error saying how to."""
        try:
            data = torch.load(self.state_path, weights_only=False)
            if not isinstance(data, dict) or not {"state", "next_job", "pending"} <= set(data):
                raise ValueError("not a search state")
            return data
        except Exception as err:  # noqa: BLE001 - truncated, garbage or absent: the journal still holds the results
            problem = "missing" if not self.state_path.exists() else f"damaged ({type(err).__name__})"
        if self.search.resume_from_journal:
            log.warning(f"{self.state_path} is {problem}: rebuilding the search state from {self.journal.path}")
            return None
        raise UserError(
            f"search.resume={self.dir}: {STATE_NAME} is {problem}; resume from the journal alone (a new "
            f"population by NSGA-II survival over the {len(self.journal.latest())} journaled candidates, "
            "none trained again) with search.resume_from_journal=true"
        )

    def _from_journal(self) -> SearchState:
        """A search state rebuilt from the journal alone (the state file lost): every journaled candidate's
        objectives told at once to a new search (``toolbox.survive``, NSGA-II by default, over them; no controller
        step), continuing at the generation after the last journaled one (a generation cut short counts as done).
        The random streams are new (seeded from the seed and that generation), so the offspring from here differ
        from those the lost state would have made. With only initial candidates journaled, the search starts
        again from its seed: the same initial population, the journaled ones not trained again."""
        latest = list(self.journal.latest().values())
        last = max(int(r.generation) for r in latest)
        self.next_job = self._max_job_dir() + 1
        if last == 0:  # the initial population is the seed's: asked again, its journaled part is not trained again
            log.info(f"resuming {self.dir} from its journal: the initial population again ({len(latest)} journaled)")
            return new_search(self.settings, self.search.seed, self.search.use_controller, self.search.toolbox)
        state = new_search(self.settings, self.search.seed + last + 1, self.search.use_controller, self.search.toolbox)
        batch = [Offspring(Genome.from_string(r.genome), r.origin or "init", tuple(r.parents or ())) for r in latest]
        tell(state, self._individuals(batch, latest, state))
        state.generation = last + 1
        by_rung = self.journal.by_rung()
        state.rung0_psnr.update(
            (k, float(r.psnr))
            for (k, rung), r in by_rung.items()
            if rung == 0 and r.status == STATUS_OK and self.search.fidelity.enabled
        )
        self._save(state, None)
        log.info(
            f"resuming {self.dir} from its journal: {len(latest)} candidates, a population of "
            f"{len(state.population)}, generation {state.generation} next"
        )
        return state

    def _max_job_dir(self) -> int:
        nums = [int(p.name) for p in self.dir.iterdir() if p.is_dir() and p.name.isdigit()] if self.dir.is_dir() else []
        return max(nums, default=-1)

    # -- evaluation -------------------------------------------------------------------------------
    def _evaluate(self, batch: list[Offspring], generation: int) -> list[JournalRecord]:
        """A journal record per offspring: cached, outside the mult-adds bounds (never trained), or trained now
        (with multi-fidelity: to the first rung)."""
        known = self.journal.latest()
        latency_cap = self.settings.constraints.max_latency_ms
        objectives = active_objectives()
        to_train: dict[str, Offspring] = {}
        for off in batch:
            key = off.genome.key
            if key in known or key in to_train:
                continue
            if (violation := bound_violation(off.genome, self.settings)) is not None:
                status, reason = violation
                cost = self.settings.cost(off.genome)
                latency = objectives.latency_ms(off.genome) if latency_cap is not None else None
                record = JournalRecord(
                    key=key,
                    genome=str(off.genome),
                    generation=generation,
                    origin=off.origin,
                    status=status,
                    params=cost.params,
                    mult_adds=cost.mult_adds,
                    error=reason,
                    latency_ms=latency,
                    rung=self._rung0(),
                    nulls=frozenset({"psnr", "ssim"}),
                )
                self.journal.append(record)
                known[key] = record
                continue
            to_train[key] = off
        if to_train:
            jobs = list(to_train.values())
            inherit = self.search.inherit
            overrides = [
                candidate_overrides(
                    o,
                    generation,
                    self._parent_weights(o, known) if inherit else (),
                    save_weights=inherit,
                    lr_size=self.settings.lr_size,
                )
                + list(self.extra_overrides)
                + self._rung_job(0)
                for o in jobs
            ]
            log.info(
                f"generation {generation}: training {len(jobs)} candidates "
                f"({len(batch) - len(jobs)} cached or over the cap)"
            )
            returns = self.launch(overrides, self.next_job)
            self.next_job += len(jobs)
            known = self.journal.latest()
            for off, ret in zip(jobs, returns):
                if off.genome.key not in known:  # the job died before its callback could journal it
                    record = JournalRecord(
                        key=off.genome.key,
                        genome=str(off.genome),
                        generation=generation,
                        origin=off.origin,
                        status=STATUS_FAILED,
                        error=lost_job(ret, self.dir),
                        rung=self._rung0(),
                        nulls=frozenset({"origin"}),
                    )
                    self.journal.append(record)
                    known[off.genome.key] = record
        return [known[o.genome.key] for o in batch]

    def _rung0(self) -> int | None:
        """The rung of a rung-0 record the driver writes itself (none with one fidelity)."""
        return 0 if self.search.fidelity.enabled else None

    def _rung_job(self, rung: int, ckpt_path: str | None = None, promoted_in: int | None = None) -> list[str]:
        """The overrides that make a job a run of ``rung`` (last, so they win over the command line's)."""
        fid = self.search.fidelity
        if not fid.enabled:
            return []
        return list(self.fidelity_overrides) + rung_overrides(rung, fid.rungs[rung], ckpt_path, promoted_in)

    def _promote(self, generation: int) -> None:
        """Successive halving after a generation's rung-0 evaluations: for each rung in turn, its promotions
        (:func:`falsr.search.fidelity.promotions`) continue from their last checkpoint to the next rung, as one
        batch of ordinary jobs through the launcher. A promotion whose job gives no result is journaled failed at
        that rung; the candidate keeps its lower rung's result."""
        fid = self.search.fidelity
        for rung in range(len(fid.rungs) - 1):
            chosen = promotions(
                self.journal.records(), rung, fid.eta, self.settings.constraints, self.settings.crowding
            )
            jobs, overrides = [], []
            for r in chosen:
                off = Offspring(Genome.from_string(r.genome), r.origin or "init", tuple(r.parents or ()))
                ckpt = r.last_ckpt
                if not ckpt or not Path(ckpt).is_file():
                    self.journal.append(
                        self._promotion_failed(
                            r, rung + 1, generation, f"no checkpoint of rung {rung} to continue from ({ckpt})"
                        )
                    )
                    continue
                jobs.append(r)
                overrides.append(
                    candidate_overrides(
                        off, int(r.generation), save_weights=self.search.inherit, lr_size=self.settings.lr_size
                    )
                    + list(self.extra_overrides)
                    + self._rung_job(rung + 1, str(Path(ckpt).resolve()), generation)
                )
            if not jobs:
                continue
            log.info(
                f"generation {generation}: promoting {len(jobs)} candidates from rung {rung} "
                f"({fid.rungs[rung]} steps) to rung {rung + 1} ({fid.rungs[rung + 1]} steps)"
            )
            returns = self.launch(overrides, self.next_job)
            self.next_job += len(jobs)
            done = self.journal.by_rung()
            for r, ret in zip(jobs, returns):
                if (r.key, rung + 1) not in done:  # the job died before its callback could journal it
                    self.journal.append(self._promotion_failed(r, rung + 1, generation, lost_job(ret, self.dir)))

    @staticmethod
    def _promotion_failed(r: JournalRecord, rung: int, generation: int, error: str) -> JournalRecord:
        """The record of a promotion of ``r`` to ``rung`` that gave no result."""
        return JournalRecord(
            key=r.key,
            genome=r.genome,
            generation=r.generation,
            origin=r.origin,
            parents=r.parents or [],
            rung=rung,
            promoted_in=generation,
            status=STATUS_FAILED,
            error=error,
            nulls=frozenset({"origin"}),
        )

    @staticmethod
    def _parent_weights(off: Offspring, known: dict[str, JournalRecord]) -> list[str]:
        """The weights files of a child's trained parents, primary first (a failed parent has none)."""
        out = []
        for key in off.parents:
            weights = known[key].weights if key in known else None
            if weights and Path(weights).is_file():
                out.append(str(Path(weights).resolve()))
        return out

    def _individuals(
        self, batch: list[Offspring], records: list[JournalRecord], state: SearchState
    ) -> list[Individual]:
        """Objectives for NSGA-II; a failed candidate gets the worst fitness (the nadir of what is known)."""
        names = active_objectives()
        ok = [names.record_vector(r, tiered_psnr(r.psnr, rung_of(r))) for r in records if r.status == STATUS_OK] + [
            tuple(i.objectives) for i in state.population
        ]
        worst_psnr = min((v[0] for v in ok), default=1.0) - 1.0
        worst = [max((v[m] for v in ok), default=WORST_COST[name]) for m, name in enumerate(names.costs, 1)]
        out = []
        for off, r in zip(batch, records):
            costs = names.vector(0.0, names.cost_values(off.genome, self.settings))[1:]
            if r.status == STATUS_OK:  # at its highest rung, compared by (rung, PSNR): tiered_psnr
                objectives = (tiered_psnr(r.psnr, rung_of(r)), *costs)
            elif r.status in UNTRAINED:  # infeasible through a cost constraint
                objectives = (worst_psnr, *costs)
            else:
                objectives = (worst_psnr, *[float(max(w, c)) for w, c in zip(worst, costs)])
            out.append(Individual(off.genome, objectives, self.settings.constraints, off.origin))
        return out

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        state, pending = self._load_or_start(resume)
        summary: dict = {}
        while state.generation <= self.search.generations:
            generation = state.generation
            if pending is None:
                pending = propose(state)
                self._save(state, pending)
            records = self._evaluate(pending, generation)
            if self.search.fidelity.enabled:  # rung 0 (also on a resume after promotions): what was predicted
                by_rung = self.journal.by_rung()
                records = [by_rung.get((o.genome.key, 0), r) for o, r in zip(pending, records)]
            measured = self._individuals(pending, records, state)
            if self.search.fidelity.enabled:
                self._promote(generation)
                latest = self.journal.latest()
                self._refresh(state, latest)
                state.rung0_psnr.update(
                    (o.genome.key, float(r.psnr)) for o, r in zip(pending, records) if r.status == STATUS_OK
                )
                records = [latest[o.genome.key] for o in pending]
            individuals = self._individuals(pending, records, state)
            quality = predictor_quality(pending, measured, [r.status == STATUS_OK for r in records])
            stats = tell(state, individuals)
            if quality is not None:
                self._log_predictor(state, generation, quality)
            pending = None
            self._save(state, None)
            summary = self._report(generation, stats)
        if self.search.measure_front and "latency" in active_objectives().names:
            summary["front_latency"] = self._measure_front()
        return summary

    def _measure_front(self) -> list[dict]:
        """The final front measured end to end under ``search.latency``: inside the search only the table's
        prediction ranks candidates, so the milliseconds a user ships by are measured once, here, at the end (again
        after a resume: a measurement is never journaled)."""
        from falsr.latency.measure import measure_network, warn_if_noisy

        objectives = active_objectives()
        settings = objectives.latency_settings()
        front = pareto_records(list(self.journal.latest().values()), self.settings.constraints)
        rows, timings = [], []
        log.info(f"measuring the final front's {len(front)} networks end to end ({settings.describe()})")
        for r in front:
            timing = measure_network(r.genome, settings)
            timings.append(timing)
            rows.append(
                {
                    "genome": r.genome,
                    "psnr": float(r.psnr),
                    "predicted_ms": float(objectives.of_record(r)["latency"]),
                    "measured_ms": timing.ms,
                    "spread": timing.spread,
                }
            )
        warn_if_noisy(timings, settings, f"the final front ({len(front)} networks)")
        path = write_front_latency(self.dir, rows, settings)
        log.info(f"the final front measured end to end: {path}")
        return rows

    @staticmethod
    def _refresh(state: SearchState, latest: dict[str, JournalRecord]) -> None:
        """The population and the archive at each candidate's highest rung after promotions (tiered PSNR)."""

        def top(key: str) -> float | None:
            r = latest.get(key)
            return tiered_psnr(r.psnr, rung_of(r)) if r is not None and r.status == STATUS_OK else None

        for ind in state.population:
            if (value := top(ind.genome.key)) is not None and value != ind.objectives[0]:
                ind.fitness.values = (value, *ind.objectives[1:])
        for key, objectives in state.archive.items():
            if (value := top(key)) is not None:
                objectives[0] = value

    def _log_predictor(self, state: SearchState, generation: int, quality: dict) -> None:
        """The predictor's held-out quality on the batch it pre-screened (not yet in its training data):
        logged, kept in the search state and appended to predictor.jsonl beside the journal."""
        entry = {"generation": generation, **quality}
        state.predictor_log.append(entry)
        with open(self.dir / PREDICTOR_LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        log.info(
            f"generation {generation}: predictor on the {quality['n']} candidates it chose: Kendall tau "
            f"{quality['tau']:.3f}, MAE {quality['mae']:.3f} dB (held out: predicted before training)"
        )

    def _report(self, generation: int, stats: dict) -> dict:
        records = list(self.journal.latest().values())
        written = write_reports(self.dir, records, self.settings.constraints, self.search.report_k)
        front = pareto_records(records, self.settings.constraints)
        hv = hypervolume([active_objectives().record_vector(r) for r in front], self.search.hypervolume_box)
        best = []
        low = 0.0
        for high in BRACKETS:
            inside = [r.psnr for r in front if low <= r.mult_adds < high]
            if inside:
                best.append(
                    f"<{high / 1e9:.0f}G: {max(inside):.2f}"
                    if math.isfinite(high)
                    else f">={low / 1e9:.0f}G: {max(inside):.2f}"
                )
            low = high
        failed = sum(r.status == STATUS_FAILED for r in records)
        rungs = ""
        if self.search.fidelity.enabled:  # the front's PSNRs come from different rungs: say which
            steps = self.search.fidelity.rungs
            counts = [sum(rung_of(r) == k for r in front) for k in range(len(steps))]
            rungs = (
                " (at each model's highest rung: "
                + ", ".join(f"{n} at rung {k} = {steps[k]} steps" for k, n in enumerate(counts) if n)
                + ")"
            )
        log.info(
            f"generation {generation} done: {len(records)} evaluated ({failed} failed), front {len(front)}{rungs}, "
            f"hypervolume {hv:.4f}; best PSNR by mult-adds: {', '.join(best) or '-'}"
        )
        summary = {
            "generation": generation,
            "evaluated": len(records),
            "failed": failed,
            "front_size": len(front),
            "hypervolume": hv,
            "controller": stats,
            "plots": written["plots"],
            "chosen": written["chosen_for_full_training"],
            "front": front,
        }
        if self.on_generation is not None:
            self.on_generation(summary)
        return summary
