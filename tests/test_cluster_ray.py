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

import pytest
from conftest import require_engine

from test_search_e2e import (GENERATIONS, POPULATION, REPO, check_outputs, env_for, journal, run_search,
                             search_args, trained)

pytestmark = pytest.mark.ray
ADDRESS = os.environ.get("RAY_ADDRESS", "")


def _ray_down() -> str:
    """Why no Ray cluster can take jobs here ('' when one can)."""
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or importlib.util.find_spec("ray") is None:
        return f"hydra-ray-launcher is not installed in {sys.executable}: pip install -e \".[ray]\""
    if not ADDRESS:
        return "RAY_ADDRESS is not set: scripts/local-ray.sh start, then eval \"$(scripts/local-ray.sh env)\""
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
    return ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={ADDRESS}",
            "+hydra.launcher.ray.remote.num_cpus=1", *extra]


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


def test_sigkill_of_the_search_then_resume_on_ray(tiny_data, tmp_path):
    """The search (the Ray driver) is SIGKILLed mid-generation; Ray ends its tasks; the resumed search trains
    what was not journaled, and nothing that was."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *ray_args())
    proc = subprocess.Popen([sys.executable, "search.py", *args], cwd=REPO, env=env_for(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if (sweep / "journal.jsonl").exists() and trained(journal(sweep), 0) and running_task_pids():
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = journal(sweep)
    assert trained(before, 0) and len(before) < POPULATION, before
    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wait_no_task()
    records = check_outputs(sweep)  # every key once
    assert records[: len(before)] == before
    assert all(r["status"] in ("ok", "over_mult_adds_cap") for r in records)
    assert trainings(sweep) == sum(r["status"] == "ok" for r in records)  # none trained twice


def test_a_task_killed_on_ray_is_failed_and_the_search_goes_on(tiny_data, tmp_path):
    """A worker killed under a running candidate (as Ray's OOM killer does), with task retries off: the
    candidate is journaled failed and the search goes on. (With Ray's default max_retries=3 the task runs
    again instead.)"""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *ray_args("+hydra.launcher.ray.remote.max_retries=0"))
    proc = subprocess.Popen([sys.executable, "search.py", *args], cwd=REPO, env=env_for(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline, killed = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None and killed is None:
        pids = running_task_pids()
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=600)
    assert killed and proc.returncode == 0, out[-3000:]
    records = check_outputs(sweep)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "no result from the job" in failed[0]["error"], failed
    assert any(r["generation"] == GENERATIONS for r in records)  # the search went on after it
