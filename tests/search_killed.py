"""search.py for the kill-and-resume tests: SIGKILLs its own process right after the journal append after which
the Python expression in FALSR_TEST_KILL_WHEN holds on ``records`` (the journal's records then).

A kill at a journal count, never at a time: with the basic launcher every append (the jobs' and the driver's)
is made in this process, so nothing else can finish between the append and the kill, however fast the machine.
Not a test module (pytest collects test_*.py only); run as ``python tests/search_killed.py <search.py args>``.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

from falsr.search import journal

SEARCH_PY = str(Path(__file__).resolve().parents[1] / "search.py")
_append, _when = journal.Journal.append, compile(os.environ["FALSR_TEST_KILL_WHEN"], "FALSR_TEST_KILL_WHEN", "eval")


def append(self, record):
    _append(self, record)
    if eval(_when, {}, {"records": self.records()}):
        os.kill(os.getpid(), signal.SIGKILL)


journal.Journal.append = append
sys.argv[0] = SEARCH_PY
runpy.run_path(SEARCH_PY, run_name="__main__")
