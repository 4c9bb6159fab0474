"""Hydra callback run inside every search job's process: journal the candidate.

A callback (not the sweeper) writes the journal so a candidate is recorded the moment its job
ends, whichever launcher ran it; a search killed mid-generation then loses no finished work.

On a cluster the jobs outlive a killed search: a resumed search launches again every candidate not yet
journaled, some of which still run (or wait in the queue) from before. Each job therefore holds a lock on
its candidate (`<sweep dir>/.claims/<key>.lock`, `<key>.r<rung>.lock` for a promotion to rung >= 1; flock:
released by the kernel when the job dies) from its start until it has journaled, and the task skips training
when the journal already has the candidate at that rung (`journaled_result`): whichever job comes second
waits, then finds the record. Each (candidate, rung) is trained and journaled once.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import math
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from falsr.errors import disk_full
from falsr.search.journal import STATUS_FAILED, STATUS_OK, Journal, JournalRecord, is_valid_psnr, rung_of

log = logging.getLogger(__name__)
CLAIMS_DIR = ".claims"
JOURNALED = "journaled_by_another_job"  # in a task's return: the candidate was already journaled, not trained


def claim_candidate(sweep_dir: Path, key: str, rung: int = 0) -> int:
    """Lock the candidate at this rung for this job (waiting while another live job holds it); returns the
    lock's fd."""
    path = Path(sweep_dir) / CLAIMS_DIR / (f"{key}.lock" if not rung else f"{key}.r{int(rung)}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info(f"candidate {key}: another job holds it (launched before a resume); waiting for it")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def journaled_result(cfg: DictConfig) -> dict | None:
    """In a search job: the candidate's journal record at this job's rung when another job already trained
    it, else None."""
    from hydra.core.hydra_config import HydraConfig

    if "candidate" not in cfg or not HydraConfig.initialized():
        return None
    journal = HydraConfig.get().get("callbacks", {}).get("search_journal", {}).get("journal")
    rung = int(cfg.candidate.get("rung") or 0)
    record = Journal(journal).by_rung().get((cfg.candidate.key, rung)) if journal else None
    if record is None or record.status not in (STATUS_OK, STATUS_FAILED):
        return None
    log.info(
        f"candidate {record.key} (rung {rung_of(record)}) is already journaled ({record.status}): not trained again"
    )
    return {**record.to_json(), JOURNALED: True}


def job_outcome(job_return: Any) -> tuple[Any, BaseException | None]:
    """(what the task returned, None) for a completed job, (None, the exception it raised) for a failed one,
    through Hydra's public ``JobReturn.status`` / ``return_value`` (which re-raises a failed job's exception)."""
    if not isinstance(job_return, JobReturn):
        return None, RuntimeError(f"the launcher returned {type(job_return).__name__}, not a JobReturn")
    if job_return.status == JobStatus.COMPLETED:
        return job_return.return_value, None
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Hydra prints the overrides of a failed job here
            _ = job_return.return_value  # reading it raises the job's own exception
    except BaseException as exc:  # noqa: BLE001 - the task's own exception, whatever it is
        return None, exc
    return None, RuntimeError(f"job status {job_return.status.name}")


ESTIMATORS = ("extrapolated", "final")


def estimate(result: dict, search) -> dict:
    """The PSNR the search ranks a trained candidate by (search.estimator), as journal fields.

    "extrapolated": a power law through the candidate's held-out learning curve, read at search.estimate_at steps
    (falsr.training.curves.extrapolate): measured in bench/proxy_fidelity.py, it ranks like the longer reference
    better than the final PSNR at the same cost. The measured PSNR stays in `measured_psnr`. A run already at or
    past estimate_at steps, or with too short a curve to fit, keeps its measured PSNR."""
    from falsr.training.curves import extrapolate

    if search.get("estimator", "final") != "extrapolated":
        return {}
    at = int(search.get("estimate_at", 1000))
    guess = extrapolate(result.get("curve"), at) if (result.get("steps") or 0) < at else None
    if guess is None or not is_valid_psnr(guess):
        return {}
    return {"psnr": guess, "measured_psnr": result["psnr"], "estimator": f"held-out PSNR extrapolated to {at} steps"}


def candidate_record(config: DictConfig, job_return: JobReturn) -> JournalRecord:
    """A journal record from a finished job: its objectives, or why it failed. Every key set here is written,
    null or not (``JournalRecord.from_json``), as it always was."""
    return JournalRecord.from_json(_candidate_fields(config, job_return))


def _candidate_fields(config: DictConfig, job_return: JobReturn) -> dict[str, Any]:
    cand = config.candidate
    record: dict[str, Any] = {
        "key": cand.key,
        "genome": cand.genome,
        "generation": int(cand.generation),
        "origin": cand.get("origin"),
        "job_num": int(config.hydra.job.num),
        "run_dir": config.hydra.runtime.output_dir,
        "parents": list(cand.get("parents") or []),
        "predicted_psnr": cand.get("predicted_psnr"),
    }
    if cand.get("rung") is not None:  # multi-fidelity: the rung, where it continued from, its last checkpoint
        record.update(
            {"rung": int(cand.rung), "promoted_in": cand.get("promoted_in"), "resumed_from": config.get("ckpt_path")}
        )
    result, error = job_outcome(job_return)
    if error is not None:
        return {**record, "status": STATUS_FAILED, "error": f"{type(error).__name__}: {error}"}
    if not isinstance(result, dict):
        return {**record, "status": STATUS_FAILED, "error": f"the task returned {type(result).__name__}, not metrics"}
    record.update(
        {
            k: result.get(k)
            for k in (
                "psnr",
                "ssim",
                "params",
                "mult_adds",
                "train_seconds",
                "weights",
                "inherited_fraction",
                "inherited_from",
                "inherited_steps",
                "curve",
            )
        }
    )
    if cand.get("rung") is not None:
        record.update({"steps": result.get("steps"), "last_ckpt": result.get("last_ckpt")})
    if result.get("status", STATUS_OK) == STATUS_OK and is_valid_psnr(result.get("psnr")):
        record.update(estimate(result, config.get("search") or {}))
    if result.get("status", STATUS_OK) != STATUS_OK:
        return {**record, "status": STATUS_FAILED, "error": result.get("error") or "training failed"}
    if not is_valid_psnr(result.get("psnr")):
        return {**record, "status": STATUS_FAILED, "error": f"PSNR is {result.get('psnr')} (NaN or missing)"}
    return {**record, "status": STATUS_OK}


class SearchJournalCallback(Callback):
    """Append each search job's outcome to `<sweep dir>/journal.jsonl`."""

    def __init__(self, journal: str):
        self.journal = Journal(journal)
        self._claim: int | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "candidate" in config:
            self._claim = claim_candidate(
                self.journal.path.parent, config.candidate.key, int(config.candidate.get("rung") or 0)
            )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if "candidate" not in config:
            return  # e.g. a full-training job launched after the search
        try:
            self._journal(config, job_return)
        finally:
            if self._claim is not None:
                os.close(self._claim)  # releases the lock
                self._claim = None

    def _journal(self, config: DictConfig, job_return: JobReturn) -> None:
        if (
            job_return.status == JobStatus.COMPLETED
            and isinstance(job_return.return_value, dict)
            and job_return.return_value.get(JOURNALED)
        ):
            return  # another job trained and journaled this candidate
        if disk_full(job_outcome(job_return)[1]) is not None:
            log.warning(f"candidate {config.candidate.key}: stopped by a full disk, not journaled (a resume trains it)")
            return  # no result of the candidate: the search stops (falsr.search.driver.lost_job)
        record = candidate_record(config, job_return)
        try:
            self.journal.append(record)
        except OSError as err:
            if disk_full(err) is None:
                raise
            # Hydra turns a callback's exception into a warning: the job's return says it instead, so that the
            # search stops rather than journal the candidate failed.
            job_return.status, job_return.return_value = JobStatus.FAILED, err
            return
        psnr = record.psnr
        shown = f"{psnr:.2f} dB" if isinstance(psnr, float) and math.isfinite(psnr) else record.error
        rung = f" rung {record.rung}" if record.rung is not None else ""
        log.info(f"[gen {record.generation}{rung}] {record.status:>6}  {record.genome}  {shown}")
