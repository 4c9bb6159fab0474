"""The search on a real Ray cluster through `hydra/launcher=ray` (hydra-ray-launcher; issue 16).

Needs `pip install -e ".[ray]"` and a Ray cluster at RAY_ADDRESS, e.g. the head node of
`scripts/local-ray.sh start` with `eval "$(scripts/local-ray.sh env)"`; skipped, saying why, where either is
missing. Ray's workers run the Python and environment the head was started with. Tiny budgets as in
tests/test_search_e2e.py.
"""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import require_engine
from falsr.space.genome import Genome
from search_killed import records_at_kill, wait_hung
from test_search_e2e import (
    GENERATIONS,
    POPULATION,
    REPO,
    TRAINED,
    check_outputs,
    env_for,
    journal,
    kill_when,
    run_search,
    search_args,
    trained,
)

pytestmark = pytest.mark.ray
ADDRESS = os.environ.get("RAY_ADDRESS", "")


def _ray_down() -> str:
    """Why no Ray cluster can take jobs here ('' when one can)."""
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or importlib.util.find_spec("ray") is None:
        return f'hydra-ray-launcher is not installed in {sys.executable}: pip install -e ".[ray]"'
    if not ADDRESS:
        return 'RAY_ADDRESS is not set: scripts/local-ray.sh start, then eval "$(scripts/local-ray.sh env)"'
    host, _, port = ADDRESS.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        return f"no Ray cluster at RAY_ADDRESS={ADDRESS} ({err})"
    return ""


@pytest.fixture(scope="module", autouse=True)
def ray_up():
    require_engine(_ray_down(), "FALSR_REQUIRE_RAY")


def ray_args(*extra: str) -> list[str]:
    # One CPU per candidate task: the cluster runs as many at once as it has CPUs.
    return [
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ADDRESS}",
        "+hydra.launcher.ray.remote.num_cpus=1",
        *extra,
    ]


def running_task_pids() -> list[int]:
    """Ray workers running a Hydra job: Ray names a worker's process after its task (ray::_run_job)."""
    out = subprocess.run(["pgrep", "-f", "^ray::_run_job"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_no_task(timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while running_task_pids() and time.time() < deadline:
        time.sleep(0.5)


def trainings(sweep) -> int:
    """How many candidate trainings finished: each leaves metrics.json with status ok in its job folder."""
    return sum(json.loads(p.read_text()).get("status") == "ok" for p in sweep.glob("*/metrics.json"))


def test_search_on_ray(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    start = time.time()
    proc = run_search(search_args(tiny_data, sweep, *ray_args()), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = check_outputs(sweep)
    assert "_run_job pid=" in proc.stdout + proc.stderr  # the jobs ran as Ray tasks
    assert trainings(sweep) == sum(r["status"] == "ok" for r in records)
    print(f"ray search: {len(records)} candidates in {time.time() - start:.0f} s")


def trainings_by_key(sweep) -> Counter:
    """How often each candidate (key) was trained to the end (metrics.json with status ok in its job folder)."""
    done = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    return Counter(Genome.from_string(m["genome"]).key for m in done if m.get("status") == "ok")


def test_sigkill_of_the_search_then_resume_on_ray(tiny_data, tmp_path):
    """The search (the Ray driver) is SIGKILLed by the job whose journal append makes one candidate trained, the
    others of the initial generation still running or queued as Ray tasks (tests/search_killed.py: a kill at a
    journal count, not at a time); Ray ends its tasks; the resumed search trains what was not journaled, and
    nothing that was."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *ray_args())
    kill_when(args, sweep, tmp_path, TRAINED.format(generation=0, n=1))
    wait_no_task()
    before = journal(sweep)[: records_at_kill(sweep / "journal.jsonl")]
    assert trained(before, 0) == 1 and len(before) < POPULATION, before
    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wait_no_task()
    records = check_outputs(sweep)  # every key once
    assert records[: len(before)] == before
    assert all(r["status"] in ("ok", "over_mult_adds_cap") for r in records)
    # Nothing journaled before the kill was trained again. (A task Ray ended after its training but before its
    # journal append is trained again by the resume: it had no result.)
    counts = trainings_by_key(sweep)
    assert all(counts[r["key"]] == 1 for r in before if r["status"] == "ok"), counts
    assert all(counts[r["key"]] >= 1 for r in records if r["status"] == "ok"), counts


def test_a_task_killed_on_ray_is_failed_and_the_search_goes_on(tiny_data, tmp_path):
    """The worker of a running candidate SIGKILLed (as Ray's OOM killer does), with task retries off: the candidate
    is journaled failed and the search goes on. (With Ray's default max_retries=3 the task runs again instead.) The
    candidate is the first job, made to hang before it trains (tests/search_killed.py), so it is certainly
    running when killed, however fast the machine."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *ray_args("+hydra.launcher.ray.remote.max_retries=0"))
    log = tmp_path / "search.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "tests/search_killed.py", *args],
            cwd=REPO,
            env={**env_for(tmp_path), "FALSR_TEST_HANG_WHEN": "job_num == 0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        hung = wait_hung(sweep, proc)
        os.kill(hung["pid"], signal.SIGKILL)
        proc.wait(timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    records = check_outputs(sweep)
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["key"] for r in failed] == [hung["key"]], failed
    assert "no result from the job" in failed[0]["error"], failed
    assert any(r["generation"] == GENERATIONS for r in records)  # the search went on after it
