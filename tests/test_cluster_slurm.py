"""The search on a real SLURM cluster through `hydra/launcher=submitit_slurm` (issue 16).

Needs a running cluster that this user can submit to, e.g. the one-node cluster of
`scripts/local-slurm.sh start` with `eval "$(scripts/local-slurm.sh env)"` (SLURM_CONF, and PATH for its
sacct); skipped, saying why, where there is none. Tiny budgets (tests/test_search_e2e.py): the machinery
is under test, not the front. Every job of a test has the test's own SLURM job name, cancelled at the end.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import require_engine
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

pytestmark = pytest.mark.slurm
PARTITION = os.environ.get("FALSR_SLURM_PARTITION", "")  # empty: the cluster's default partition


def _slurm_down() -> str:
    """Why no SLURM cluster can take jobs here ('' when one can)."""
    if not shutil.which("sbatch"):
        return "no sbatch on PATH (start one with scripts/local-slurm.sh start)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        said = ((out.stderr or out.stdout).strip().splitlines() or ["nothing"])[-1][:200]
        return (
            f"no SLURM node up (sinfo: {said}); "
            'start one with scripts/local-slurm.sh start and eval "$(scripts/local-slurm.sh env)"'
        )
    return ""


@pytest.fixture(scope="module", autouse=True)
def slurm_up():
    require_engine(_slurm_down(), "FALSR_REQUIRE_SLURM")


@pytest.fixture
def job_name():
    """A SLURM job name for this test's jobs; whatever of them is left is cancelled at the end."""
    name = f"falsr-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", "--name", name], capture_output=True)


def slurm_args(name: str, *extra: str) -> list[str]:
    args = [
        "hydra/launcher=submitit_slurm",
        f"hydra.launcher.name={name}",
        "hydra.launcher.timeout_min=15",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.nodes=1",
        "hydra.launcher.tasks_per_node=1",
    ]
    return args + ([f"hydra.launcher.partition={PARTITION}"] if PARTITION else []) + list(extra)


def queue(name: str, states: str = "PENDING,RUNNING") -> list[tuple[str, str]]:
    out = subprocess.run(
        ["squeue", "-h", "--name", name, "-t", states, "-o", "%i %T"], capture_output=True, text=True
    ).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def wait_queue_empty(name: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while queue(name) and time.time() < deadline:
        time.sleep(1)
    assert not queue(name), queue(name)


def trainings(sweep) -> int:
    """How many candidate trainings finished: each leaves metrics.json with status ok in its job folder."""
    return sum(json.loads(p.read_text()).get("status") == "ok" for p in sweep.glob("*/metrics.json"))


def test_search_on_slurm(tiny_data, job_name, tmp_path):
    sweep = tmp_path / "sweep"
    start = time.time()
    proc = run_search(search_args(tiny_data, sweep, *slurm_args(job_name)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = check_outputs(sweep)
    # The jobs ran as SLURM jobs: Hydra's job id is the SLURM job id (not the launcher's job_id_for_<n>).
    ids = [
        re.search(r"\n    id: '?(\d+(_\d+)?)'?\n", (Path(r["run_dir"]) / ".hydra" / "hydra.yaml").read_text())
        for r in records
        if r["status"] == "ok"
    ]
    assert all(ids), "a job did not run under SLURM"
    assert trainings(sweep) == sum(r["status"] == "ok" for r in records)
    print(f"slurm search: {len(records)} candidates in {time.time() - start:.0f} s")


def test_a_latency_search_on_slurm(tiny_data, job_name, tmp_path):
    """search.objectives=[psnr,latency] with its candidates as SLURM jobs (issue 26): the table is profiled on the
    submitting machine, the jobs train only (no measurement inside a job), the front carries the table's
    milliseconds and is measured end to end at the end, as with the basic launcher."""
    from falsr.space.genome import SearchSpace, using_space
    from test_latency_search import SPACE_KW, latency_search_args, profile, tiny_table

    cache = str(tmp_path / "latency")
    profile(cache)
    sweep = tmp_path / "sweep"
    args = latency_search_args(tiny_data, sweep, cache, *slurm_args(job_name))
    proc = run_search(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = journal(sweep)
    assert len({r["key"] for r in records}) == len(records) == POPULATION * (GENERATIONS + 1)
    ok = [r for r in records if r["status"] == "ok"]
    assert ok and all(
        re.search(r"\n    id: '?\d+(_\d+)?'?\n", (Path(r["run_dir"]) / ".hydra" / "hydra.yaml").read_text()) for r in ok
    ), "a job did not run under SLURM"
    pareto = json.loads((sweep / "pareto.json").read_text())
    table = tiny_table(cache)
    with using_space(SearchSpace(**SPACE_KW)):
        assert pareto["front"] and all(
            r["latency_ms"] == pytest.approx(table.predict(r["genome"])) for r in pareto["front"]
        )
    measured = json.loads((sweep / "front_latency.json").read_text())
    assert [r["genome"] for r in measured["front"]] == [r["genome"] for r in pareto["front"]]
    assert all(r["measured_ms"] > 0 for r in measured["front"])
    assert (sweep / "front_psnr_vs_latency.png").stat().st_size > 1000


def test_sigkill_of_the_search_then_resume_on_slurm(tiny_data, job_name, tmp_path):
    """The search process is SIGKILLed while its jobs run on the cluster (they go on), then resumed: jobs
    launched again wait for their first launch and take its result; each candidate is trained and journaled
    once, none is lost. The kill comes from the job whose journal append makes one candidate trained
    (tests/search_killed.py: a kill at a journal count, not at a time), the initial generation's other jobs still
    running or queued."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *slurm_args(job_name))
    kill_when(args, sweep, tmp_path, TRAINED.format(generation=0, n=1))
    before = journal(sweep)[: records_at_kill(sweep / "journal.jsonl")]
    assert trained(before, 0) == 1 and len(before) < POPULATION, before  # mid-generation

    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wait_queue_empty(job_name)  # jobs of the killed search that started late find their candidate journaled
    records = check_outputs(sweep)  # every key once, all POPULATION x (GENERATIONS + 1) of them
    assert records[: len(before)] == before
    assert all(r["status"] in ("ok", "over_mult_adds_cap") for r in records)
    assert trainings(sweep) == sum(r["status"] == "ok" for r in records)  # no candidate trained twice
    # Whether the resumed search launched again a job that was still running (more job folders than trainings)
    # depends on timing: on a quiet machine the killed search's jobs may all finish before the resume asks.
    # What must hold either way is asserted above: every candidate journaled once, none trained twice.
    assert len([p for p in sweep.iterdir() if p.name.isdigit()]) >= trainings(sweep)


def test_a_job_cancelled_by_slurm_is_failed_and_the_search_goes_on(tiny_data, job_name, tmp_path):
    """A running candidate job cancelled (scancel): journaled failed, the search goes on. The job is the first one,
    made to hang before it trains (tests/search_killed.py), so it is certainly running when cancelled."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, *slurm_args(job_name))
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
        subprocess.run(["scancel", hung["slurm_job_id"]], check=True)
        proc.wait(timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    records = check_outputs(sweep)
    by_key = {r["key"]: r for r in records}
    key = hung["key"]
    assert by_key[key]["status"] == "failed" and "no result from the job" in by_key[key]["error"], by_key[key]
    assert "UncompletedJobError" in by_key[key]["error"]
    assert [r["key"] for r in records if r["status"] == "failed"] == [key]
    assert any(r["generation"] == GENERATIONS for r in records)  # the search went on after it
    # submitit notices a job that died without a result at its next sacct poll (2, 4, 8 ... s after the
    # last submission, at most 10 min apart): the failure is journaled late, but journaled.


def _gpu_gres() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout
    counts = [int(m) for m in re.findall(r"gpu(?::[\w-]+)?:(\d+)", out)]
    return max(counts, default=0)


def test_one_gpu_per_candidate_job_on_slurm(tiny_data, job_name, tmp_path):
    """hydra.launcher.gpus_per_node=1: every candidate job is given one GPU by SLURM (CUDA_VISIBLE_DEVICES),
    and a node with one GPU runs them one at a time. On the local cluster the GPU is a GRES backed by no
    device (FALSR_SLURM_FAKE_GPUS=1): the scheduling is real, training on a GPU is not tested."""
    if _gpu_gres() != 1:
        pytest.skip(
            "needs a cluster whose nodes have one GPU GRES: FALSR_SLURM_FAKE_GPUS=1 scripts/local-slurm.sh start"
        )
    sweep = tmp_path / "sweep"
    marker = 'hydra.launcher.setup=["echo FALSR_GPU=$CUDA_VISIBLE_DEVICES START=$(date +%s.%N)"]'
    proc = run_search(
        search_args(
            tiny_data, sweep, *slurm_args(job_name, "hydra.launcher.gpus_per_node=1", marker), "search.generations=0"
        ),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    intervals = []
    for r in journal(sweep):
        if r["status"] != "ok":
            continue
        slurm_id = re.search(r"\n    id: '?(\d+)", (Path(r["run_dir"]) / ".hydra" / "hydra.yaml").read_text()).group(1)
        log = "".join(p.read_text() for p in (sweep / ".submitit" / slurm_id).glob("*_log.out"))
        gpu, start = re.search(r"FALSR_GPU=(\S*) START=([\d.]+)", log).groups()
        assert gpu == "0", log[:500]  # one GPU, numbered within the job
        intervals.append((float(start), r["time"]))
    assert len(intervals) >= 2
    intervals.sort()
    assert all(nxt[0] >= prev[1] for prev, nxt in zip(intervals, intervals[1:])), intervals  # one at a time
