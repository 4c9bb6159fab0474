"""search.py for the kill-and-resume tests: SIGKILLs the search process at the first point where the Python expression
in FALSR_TEST_KILL_WHEN holds. It is evaluated with ``records`` (the journal's records), ``event`` and ``count``:
right after every journal append (``event == "append"``), right before every batch of jobs is launched
(``"launch"``, ``count``: launches so far, this one included) and right after the reports of a generation are
written (``"report"``, ``count``: reports so far), e.g. ``len(records) >= 2`` or ``event == "launch"``.

A kill at a journal count or a point of the loop, never at a time. With the basic launcher every append (the jobs'
and the driver's) is made in this process, so nothing else can finish between the append and the kill, however
fast the machine. With a cluster engine (SLURM, Ray) the jobs append from their own processes: the task function
handed to the launcher is wrapped (and pickled by value with it, so it reaches the jobs however the engine starts
them) so that the jobs' appends go through the same check, and every append and its check take a gate lock
(``journal.jsonl.gate``) in turn. The job whose append makes the expression hold SIGKILLs the search (same host:
the tests' clusters) and keeps the gate until it is dead, so the journal holds exactly what it held at that
append when the search dies; that job writes the count into ``journal.jsonl.killed`` (read it with
:func:`records_at_kill`). Jobs still running go on afterwards as the engine lets them (SLURM: they do; Ray: it ends
the dead driver's tasks).

FALSR_TEST_HANG_WHEN (optional): an expression evaluated in each job before it trains, with ``job_num`` (Hydra's
job number) and ``candidate`` (the job's ``candidate`` node); where it holds, the job writes ``.hung`` into the
sweep folder (JSON: its ``pid``, ``slurm_job_id`` and candidate ``key``) and sleeps until it is killed, so that a
test can kill a job that is certainly still running.

Not a test module (pytest collects test_*.py only); run as ``python tests/search_killed.py <search.py args>``.
"""

import fcntl
import functools
import json
import os
import runpy
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from falsr.search import driver, journal

SEARCH_PY = str(Path(__file__).resolve().parents[1] / "search.py")
KILL_WHEN = os.environ.get("FALSR_TEST_KILL_WHEN")
HANG_WHEN = os.environ.get("FALSR_TEST_HANG_WHEN")
SEARCH_PID = os.getpid()
counts: Counter = Counter()


def records_at_kill(journal_path: Path) -> int:
    """How many records the journal held when a cluster job killed the search (see the module's doc)."""
    return int(Path(str(journal_path) + ".killed").read_text())


def wait_hung(sweep: Path, proc, timeout: float = 600) -> dict:
    """The ``.hung`` file of a job hung by FALSR_TEST_HANG_WHEN, once it is there (a wait for a condition; the
    timeout only keeps a broken search from hanging the test). Fails where the search ``proc`` ends first."""
    path = Path(sweep) / ".hung"
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the search ended (exit {proc.returncode}) before a job hung"
        assert time.time() < deadline, f"no job hung within {timeout} s"
        time.sleep(0.2)
    return json.loads(path.read_text())


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped by its parent


def maybe_kill(event: str, records, journal_path) -> None:
    """SIGKILL the search where KILL_WHEN holds; it sees ``records`` as the journal lines' JSON objects."""
    counts[event] += 1
    records = [r.to_json() for r in records]
    if KILL_WHEN is None or not eval(KILL_WHEN, {}, {"records": records, "event": event, "count": counts[event]}):
        return
    if os.getpid() == SEARCH_PID:
        os.kill(SEARCH_PID, signal.SIGKILL)
    marker = Path(str(journal_path) + ".killed")  # a job of a cluster engine: the search runs elsewhere
    if marker.exists():
        return  # killed already (this job's process outlived it)
    marker.write_text(str(len(records)))
    try:
        os.kill(SEARCH_PID, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while alive(SEARCH_PID):  # the caller keeps the gate meanwhile: no other append can land before the kill
        time.sleep(0.05)


def append(self, record):
    """Journal.append, then the check, both under the gate lock (one append and its check at a time)."""
    fd = os.open(str(self.path) + ".gate", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        journal.Journal.unchecked_append(self, record)
        maybe_kill("append", self.records(), self.path)
    finally:
        os.close(fd)


def install() -> None:
    """Checked appends in this process (the search's, and a job's of a cluster engine), once."""
    if not hasattr(journal.Journal, "unchecked_append"):
        journal.Journal.unchecked_append = journal.Journal.append
        journal.Journal.append = append


def maybe_hang(cfg) -> None:
    if HANG_WHEN is None:
        return
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    candidate = cfg.get("candidate")
    if not eval(HANG_WHEN, {}, {"job_num": hydra.job.num, "candidate": candidate}):
        return
    sweep = Path(hydra.sweep.dir)
    tmp = sweep / ".hung.tmp"
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                "key": candidate.key if candidate else None,
            }
        )
    )
    os.replace(tmp, sweep / ".hung")
    while True:
        time.sleep(3600)


def in_job(task_function):
    """The task function as the jobs run it: checked appends, and the hang, first."""

    @functools.wraps(task_function)
    def task(cfg):
        install()
        maybe_hang(cfg)
        return task_function(cfg)

    return task


_init = driver.SearchDriver.__init__


def init(self, sweep_dir, search, launch, *args, **kwargs):
    def launch_or_die(batch, initial_job_idx):
        maybe_kill("launch", self.journal.records(), self.journal.path)
        return launch(batch, initial_job_idx)

    _init(self, sweep_dir, search, launch_or_die, *args, **kwargs)


_write_reports = driver.write_reports


def write_reports(sweep_dir, *args, **kwargs):
    written = _write_reports(sweep_dir, *args, **kwargs)
    path = Path(sweep_dir) / journal.JOURNAL_NAME
    maybe_kill("report", journal.Journal(path).records(), path)
    return written


if __name__ == "__main__":
    from hydra.core.plugins import Plugins

    _instantiate_launcher = Plugins.instantiate_launcher

    def instantiate_launcher(self, hydra_context, task_function, config):
        return _instantiate_launcher(
            self, hydra_context=hydra_context, task_function=in_job(task_function), config=config
        )

    install()
    driver.SearchDriver.__init__ = init
    driver.write_reports = write_reports
    Plugins.instantiate_launcher = instantiate_launcher
    sys.argv[0] = SEARCH_PY
    runpy.run_path(SEARCH_PY, run_name="__main__")
