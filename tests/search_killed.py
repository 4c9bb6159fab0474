"""search.py for the kill-and-resume tests: SIGKILLs its own process at the first point where the Python expression
in FALSR_TEST_KILL_WHEN holds. It is evaluated with ``records`` (the journal's records), ``event`` and ``count``:
right after every journal append (``event == "append"``), right before every batch of jobs is launched
(``"launch"``, ``count``: launches so far, this one included) and right after the reports of a generation are
written (``"report"``, ``count``: reports so far), e.g. ``len(records) >= 2`` or ``event == "launch"``.

A kill at a journal count or a point of the loop, never at a time: with the basic launcher every append (the jobs'
and the driver's) is made in this process, so nothing else can finish between the append and the kill, however
fast the machine. Not a test module (pytest collects test_*.py only); run as
``python tests/search_killed.py <search.py args>``.
"""

import os
import runpy
import signal
import sys
from collections import Counter
from pathlib import Path

from falsr.search import driver, journal

SEARCH_PY = str(Path(__file__).resolve().parents[1] / "search.py")
WHEN = compile(os.environ["FALSR_TEST_KILL_WHEN"], "FALSR_TEST_KILL_WHEN", "eval")
counts: Counter = Counter()


def maybe_kill(event: str, records) -> None:
    counts[event] += 1
    if eval(WHEN, {}, {"records": records, "event": event, "count": counts[event]}):
        os.kill(os.getpid(), signal.SIGKILL)


_append = journal.Journal.append


def append(self, record):
    _append(self, record)
    maybe_kill("append", self.records())


_init = driver.SearchDriver.__init__


def init(self, sweep_dir, settings, options, launch, *args, **kwargs):
    def launch_or_die(batch, initial_job_idx):
        maybe_kill("launch", self.journal.records())
        return launch(batch, initial_job_idx)

    _init(self, sweep_dir, settings, options, launch_or_die, *args, **kwargs)


_write_reports = driver.write_reports


def write_reports(sweep_dir, *args, **kwargs):
    written = _write_reports(sweep_dir, *args, **kwargs)
    maybe_kill("report", journal.Journal(Path(sweep_dir) / journal.JOURNAL_NAME).records())
    return written


journal.Journal.append = append
driver.SearchDriver.__init__ = init
driver.write_reports = write_reports
sys.argv[0] = SEARCH_PY
runpy.run_path(SEARCH_PY, run_name="__main__")
