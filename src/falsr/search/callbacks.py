"""Hydra callback run inside every search job's process: journal the candidate.

A callback (not the sweeper) writes the journal so a candidate is recorded the moment its job
ends, whichever launcher ran it; a search killed mid-generation then loses no finished work.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Any, Optional

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from falsr.search.journal import STATUS_FAILED, STATUS_OK, Journal, is_valid_psnr

log = logging.getLogger(__name__)


def job_outcome(job_return: Any) -> tuple[Any, Optional[BaseException]]:
    """(what the task returned, None) for a completed job, (None, the exception it raised) for a failed one,
    through Hydra's public ``JobReturn.status`` / ``return_value`` (which re-raises a failed job's exception)."""
    if not isinstance(job_return, JobReturn):
        return None, RuntimeError(f"the launcher returned {type(job_return).__name__}, not a JobReturn")
    if job_return.status == JobStatus.COMPLETED:
        return job_return.return_value, None
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Hydra prints the overrides of a failed job here
            job_return.return_value
    except BaseException as exc:  # noqa: BLE001 - the task's own exception, whatever it is
        return None, exc
    return None, RuntimeError(f"job status {job_return.status.name}")


def candidate_record(config: DictConfig, job_return: JobReturn) -> dict:
    """A journal record from a finished job: its objectives, or why it failed."""
    cand = config.candidate
    record: dict[str, Any] = {"key": cand.key, "genome": cand.genome, "generation": int(cand.generation),
                              "origin": cand.get("origin"), "job_num": int(config.hydra.job.num),
                              "run_dir": config.hydra.runtime.output_dir,
                              "parents": list(cand.get("parents") or []), "predicted_psnr": cand.get("predicted_psnr")}
    result, error = job_outcome(job_return)
    if error is not None:
        return {**record, "status": STATUS_FAILED, "error": f"{type(error).__name__}: {error}"}
    if not isinstance(result, dict):
        return {**record, "status": STATUS_FAILED, "error": f"the task returned {type(result).__name__}, not metrics"}
    record.update({k: result.get(k) for k in ("psnr", "ssim", "params", "mult_adds", "train_seconds", "weights",
                                              "inherited_fraction", "inherited_from", "inherited_steps")})
    if result.get("status", STATUS_OK) != STATUS_OK:
        return {**record, "status": STATUS_FAILED, "error": result.get("error") or "training failed"}
    if not is_valid_psnr(result.get("psnr")):
        return {**record, "status": STATUS_FAILED, "error": f"PSNR is {result.get('psnr')} (NaN or missing)"}
    return {**record, "status": STATUS_OK}


class SearchJournalCallback(Callback):
    """Append each search job's outcome to `<sweep dir>/journal.jsonl`."""

    def __init__(self, journal: str):
        self.journal = Journal(journal)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if "candidate" not in config:
            return  # e.g. a full-training job launched after the search
        record = candidate_record(config, job_return)
        self.journal.append(record)
        psnr = record.get("psnr")
        shown = f"{psnr:.2f} dB" if isinstance(psnr, float) and math.isfinite(psnr) else record.get("error")
        log.info(f"[gen {record['generation']}] {record['status']:>6}  {record['genome']}  {shown}")
