"""Faults injected into real (tiny) searches: SIGKILL at points of the loop, two processes on one sweep folder, a
damaged or missing `search_state.pt`, a candidate that runs too long or hangs.

Every kill here is triggered by a journal record count or a point of the loop, never by time: the search runs as
tests/search_killed.py, which SIGKILLs its own process right after the journal append that brings the journal to N
records, right before a launch or right after a report (the basic launcher runs the jobs in the search's process,
so no other job can finish in between, however fast the machine). Every
case ends by checking the journal holds each (candidate, rung) once and, where the outcome is defined by the seed,
that the front is the one the uninterrupted search writes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POPULATION, GENERATIONS = 4, 1

# Holds a sweep folder's lock as a search would, until killed.
HOLD_LOCK = """
import sys, time
from falsr.search.lock import acquire
acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""

# search.py, with one candidate made to run far beyond any timeout (100000 steps) and one that hangs in its first
# training step (asleep for 11 days: only the job's timer can end it, no batch ever ends).
SLOW_APP = """
import os, time
import hydra
from omegaconf import open_dict
from falsr.cli import CONF_DIR, user_errors
from falsr.training import module
from falsr.training.train import train

@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
@user_errors
def main(cfg):
    key = cfg.get("candidate", {}).get("key")
    if key == os.environ["SLOW_KEY"]:
        with open_dict(cfg):
            cfg.trainer.max_steps = 100000
    step = module.SRModule.training_step
    if key == os.environ["HANG_KEY"]:
        module.SRModule.training_step = lambda self, *args, **kwargs: time.sleep(10**6)
    try:
        return train(cfg)
    finally:
        module.SRModule.training_step = step

if __name__ == "__main__":
    main()
"""


def search_args(data: Path, sweep: Path, *extra: str, generations: int = GENERATIONS) -> list[str]:
    return [
        "+search=nsga2",
        f"paths.data_dir={data}",
        f"data.train_dir={data}/train/T4",
        "data.holdout=0",
        "data.val_sets=[Tiny]",
        "trainer.max_steps=3",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        f"search.settings.population_size={POPULATION}",
        f"search.generations={generations}",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def env_for(tmp: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "FALSR_CACHE_DIR": str(tmp / "cache"),
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run_search(args: list[str], tmp: Path, script: str = "search.py", timeout: int = 600, **env: str):
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        env=env_for(tmp, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def killed_after_when(condition: str, args: list[str], sweep: Path, tmp: Path) -> list[dict]:
    """Run the search, SIGKILLed right after the journal append after which ``condition`` (a Python expression on
    the journal's ``records``) holds (tests/search_killed.py); the journal then."""
    proc = run_search(args, tmp, script=str(REPO / "tests" / "search_killed.py"), FALSR_TEST_KILL_WHEN=condition)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return journal(sweep) if (sweep / "journal.jsonl").exists() else []


def killed_after(n_records: int, args: list[str], sweep: Path, tmp: Path) -> list[dict]:
    """Run the search until the journal holds ``n_records`` records, SIGKILL it there; the journal then."""
    records = killed_after_when(f"len(records) >= {n_records}", args, sweep, tmp)
    assert len(records) == n_records
    return records


def journal(sweep: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep / "journal.jsonl").read_text().splitlines() if line.strip()]


def check_journal(sweep: Path) -> list[dict]:
    """Each (candidate, rung) journaled once, and each job folder used by one record."""
    records = journal(sweep)
    pairs = [(r["key"], r.get("rung", 0)) for r in records]
    assert len(pairs) == len(set(pairs)), pairs
    run_dirs = [r["run_dir"] for r in records if r.get("run_dir")]
    assert len(run_dirs) == len(set(run_dirs)), run_dirs
    return records


def front(sweep: Path) -> list[tuple[str, float]]:
    return sorted((r["key"], round(r["psnr"], 4)) for r in json.loads((sweep / "pareto.json").read_text())["front"])


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    """The search none of the faults interrupts: its journal and front are the references."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    sweep = tmp / "sweep"
    proc = run_search(search_args(tiny_data, sweep), tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = check_journal(sweep)
    assert len(records) == POPULATION * (GENERATIONS + 1)
    return sweep


def same_as_uninterrupted(sweep: Path, before: list[dict], uninterrupted: Path) -> None:
    """The resumed journal keeps what was journaled before the fault and ends as the uninterrupted search's, with
    the same front."""
    records = check_journal(sweep)
    assert records[: len(before)] == before
    same = ("key", "genome", "generation", "origin", "status")
    assert [{k: r[k] for k in same} for r in records] == [{k: r[k] for k in same} for r in journal(uninterrupted)]
    assert front(sweep) == front(uninterrupted)


# -- two processes on one sweep folder ---------------------------------------------------------------------------


def test_the_sweep_lock_is_exclusive_and_a_closed_holder_frees_it(tmp_path):
    from falsr.errors import UserError
    from falsr.search.lock import LOCK_NAME, acquire

    holder = f"{os.getpid()} on {socket.gethostname()}"
    fd = acquire(tmp_path / "sweep")
    assert (tmp_path / "sweep" / LOCK_NAME).read_text().strip() == holder
    with pytest.raises(
        UserError,
        match=rf"{tmp_path / 'sweep'} is in use by another search process "
        rf"\(pid {holder}\): wait for it to end or stop it",
    ):
        acquire(tmp_path / "sweep")
    os.close(fd)
    os.close(acquire(tmp_path / "sweep"))


def test_a_lock_kept_by_an_ended_holders_child_is_waited_for_then_named(tmp_path):
    """The holder forks (as a data-loader worker is forked) and is SIGKILLed; its child keeps the lock: a new
    acquire waits for the child (here: refuses after a 0 s wait, saying so), and takes the lock once it is gone."""
    from falsr.errors import UserError
    from falsr.search.lock import acquire

    code = (
        "import os, sys, time\nfrom falsr.search.lock import acquire\nacquire(sys.argv[1])\n"
        "child = os.fork()\nif child == 0:\n    time.sleep(600)\n"
        "print(child, flush=True)\ntime.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    child = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with pytest.raises(UserError, match=rf"\(pid {holder.pid} on .+, ended; a process it started still holds it\)"):
            acquire(tmp_path, orphan_wait_s=0)
    finally:
        os.kill(child, signal.SIGKILL)
    os.close(acquire(tmp_path))  # the child gone (killed; reaped by init), waited for within orphan_wait_s


@pytest.mark.slow
def test_a_second_resume_of_the_same_folder_refuses_until_the_holder_dies(tiny_data, uninterrupted, tmp_path):
    """A search killed in its initial generation; another process holds the folder (as a running resume would):
    a resume refuses in one line naming the folder and the holder's pid, and changes nothing. The holder
    SIGKILLed, the same resume completes with the uninterrupted search's journal pairs and front."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep)
    before = killed_after(2, args, sweep, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(sweep)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run_search(args + [f"search.resume={sweep}"], tmp_path, timeout=300)
        line = one_line(refused)
        assert line.startswith(f"error: {sweep} is in use by another search process (pid {holder.pid} on "), line
        assert journal(sweep) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = check_journal(sweep)
    assert records[: len(before)] == before  # nothing finished was trained again
    assert sorted(r["key"] for r in records) == sorted(r["key"] for r in journal(uninterrupted))
    assert front(sweep) == front(uninterrupted)


# -- SIGKILL of the search at points of its loop ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "when, killed_there",
    [
        # the state written, no job launched yet (only candidates over the mult-adds cap journaled, by the driver)
        ("event == 'launch' and count == 1", lambda before, n: all(r.get("job_num") is None for r in before)),
        ("len(records) >= 2", lambda before, n: len(before) == 2),  # mid initial generation
        # writing the initial generation's reports (after its tell)
        ("event == 'report' and count == 1", lambda before, n: len(before) == POPULATION and n == 1),
        (f"len(records) >= {POPULATION + 1}", lambda before, n: len(before) == POPULATION + 1),  # mid generation 1
        # generation 1 asked, its jobs not launched
        (
            "event == 'launch' and count == 2",
            lambda before, n: all(r.get("job_num") is None for r in before if r["generation"] == 1),
        ),
    ],
    ids=["before_the_first_job", "mid_generation_0", "during_a_report", "mid_generation_1", "before_generation_1"],
)
def test_sigkill_at_a_point_of_the_loop_then_resume(when, killed_there, tiny_data, uninterrupted, tmp_path):
    """Killed at a point chosen by the journal or the loop, not by time; resumed: the journal is the uninterrupted
    search's, in its order, nothing finished trained again, and the front is the same."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep)
    before = killed_after_when(when, args, sweep, tmp_path)
    assert (sweep / "search_state.pt").is_file()
    assert killed_there(before, len(list(sweep.glob("pareto.json")))), [
        (r["generation"], r.get("job_num")) for r in before
    ]
    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_as_uninterrupted(sweep, before, uninterrupted)


# -- search_state.pt damaged or missing ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_or_missing_state_in_the_initial_generation(tiny_data, uninterrupted, tmp_path):
    """Killed after 2 initial candidates, the state file truncated, then removed: each resume is one line saying
    how to resume from the journal; search.resume_from_journal=true asks the seed's initial population again
    (the 2 journaled candidates not trained again), so the search ends as the uninterrupted one."""
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep)
    before = killed_after(2, args, sweep, tmp_path)
    state = sweep / "search_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    line = one_line(run_search(args + [f"search.resume={sweep}"], tmp_path, timeout=300))
    assert f"search.resume={sweep}: search_state.pt is damaged" in line, line
    assert "search.resume_from_journal=true" in line and "2 journaled candidates" in line, line
    state.unlink()
    line = one_line(run_search(args + [f"search.resume={sweep}"], tmp_path, timeout=300))
    assert "search_state.pt is missing" in line and "search.resume_from_journal=true" in line, line
    assert journal(sweep) == before

    resumed = run_search(args + [f"search.resume={sweep}", "search.resume_from_journal=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_as_uninterrupted(sweep, before, uninterrupted)


@pytest.mark.slow
def test_a_garbage_state_later_is_rebuilt_from_the_journal(tiny_data, tmp_path):
    """Killed in generation 1 of 2 and the state file overwritten with garbage: the resume with
    search.resume_from_journal=true takes a population by NSGA-II survival over the journaled candidates, trains
    none of them again, and goes on with generation 2; the reports are those of the whole journal."""
    from falsr.search.journal import JournalRecord
    from falsr.search.report import pareto_records
    from falsr.search.settings import Constraints

    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, generations=2)
    before = killed_after(POPULATION + 1, args, sweep, tmp_path)
    assert [r["generation"] for r in before] == [0] * POPULATION + [1]
    (sweep / "search_state.pt").write_bytes(b"\x00not a torch file" * 64)
    line = one_line(run_search(args + [f"search.resume={sweep}"], tmp_path, timeout=300))
    assert "search_state.pt is damaged" in line and "search.resume_from_journal=true" in line, line

    resumed = run_search(args + [f"search.resume={sweep}", "search.resume_from_journal=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "rebuilding the search state from" in resumed.stdout + resumed.stderr
    records = check_journal(sweep)
    assert records[: len(before)] == before  # nothing journaled was trained again
    after = records[len(before) :]
    assert [r["generation"] for r in after] == [2] * POPULATION  # generation 1 cut short counts as done
    assert {r["key"] for r in after}.isdisjoint(r["key"] for r in before)
    assert any(r["status"] == "ok" for r in after)
    expected = sorted(r.key for r in pareto_records([JournalRecord.from_json(r) for r in records], Constraints()))
    assert front(sweep) and [k for k, _ in front(sweep)] == expected
    # the rebuilt state was saved: a plain resume now finds a finished search and trains nothing
    again = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert journal(sweep) == records


@pytest.mark.slow
def test_a_lost_state_during_promotions_is_rebuilt_from_the_journal(tiny_data, tmp_path):
    """Multi-fidelity (rungs [2, 4] steps, eta 2): killed after generation 1's first promotion was journaled, the
    state file removed; resumed from the journal alone, the search promotes and trains on without any
    (candidate, rung) twice, every promotion continued from its candidate's own rung-0 checkpoint."""
    sweep = tmp_path / "sweep"
    args = [
        arg.replace("trainer.max_steps=3", "trainer.max_steps=4")
        for arg in search_args(tiny_data, sweep, generations=2)
    ]
    args += ["scheduler.warmup_steps=1", "search.fidelity.rungs=[2,4]", "search.fidelity.eta=2"]
    before = killed_after_when(
        "any(r.get('rung') == 1 and r.get('promoted_in') == 1 for r in records)", args, sweep, tmp_path
    )
    assert before[-1]["rung"] == 1 and before[-1]["promoted_in"] == 1
    (sweep / "search_state.pt").unlink()
    resumed = run_search(args + [f"search.resume={sweep}", "search.resume_from_journal=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = check_journal(sweep)
    assert records[: len(before)] == before
    assert sum(r["generation"] == 2 and r["rung"] == 0 for r in records) == POPULATION
    rung0 = {r["key"]: r for r in records if r["rung"] == 0}
    later = [r for r in records[len(before) :] if r["rung"] == 1]
    assert later and all(r["promoted_in"] == 2 for r in later)  # generation 2's promotions, from the journal
    for r in records:
        if r["rung"] == 1 and r["status"] == "ok":
            assert Path(r["resumed_from"]) == Path(rung0[r["key"]]["last_ckpt"]).resolve()
    assert front(sweep)


# -- a candidate that hangs -----------------------------------------------------------------------------------------


def test_the_job_timer_ends_a_hung_step_and_puts_the_signal_handler_back():
    """JobTimeout's SIGALRM timer (armed at Lightning's setup) raises TimeoutError in a step that sleeps for 30 s
    with a 0.2 s limit, and leaves SIGALRM as it found it; disarmed at teardown it never fires; check() raises
    once the limit has passed."""
    import time

    from falsr.training.train import JobTimeout

    before = signal.getsignal(signal.SIGALRM)
    timer = JobTimeout(0.2, time.monotonic())
    timer.setup(None, None, "fit")
    with pytest.raises(TimeoutError, match=r"^timed out after 0.2 s \(job_timeout_s\)$"):
        time.sleep(30)
    timer.on_exception(None, None, TimeoutError())
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    finished = JobTimeout(0.2, time.monotonic())
    finished.setup(None, None, "fit")
    finished.teardown(None, None, "fit")  # the run ended in time
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.3)
    with pytest.raises(TimeoutError, match="timed out after 1 s"):
        JobTimeout(1, time.monotonic() - 2).check()
    JobTimeout(600, time.monotonic()).check()


def test_the_job_timeout_reaches_every_candidate_job_as_an_override():
    """search.job_timeout_s becomes job_timeout_s=N among the overrides of every candidate job (full training jobs
    are built from the command line's overrides only); train.py alone has no limit by default."""
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR
    from falsr.search.hydra_glue import job_overrides, search_config

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = compose(
            "search", overrides=["+search=nsga2", "search.job_timeout_s=90", "search.resume_from_journal=true"]
        ).search
        default = compose("search", overrides=["+search=nsga2"]).search
        train = compose("train")
    config = search_config(search)
    assert job_overrides(config, ["data.patch_size=32"]) == ("data.patch_size=32", "job_timeout_s=90")
    assert config.resume_from_journal
    assert job_overrides(search_config(default), []) == () and not search_config(default).resume_from_journal
    assert train.job_timeout_s is None


@pytest.mark.slow
def test_candidates_past_the_job_timeout_fail_and_the_search_goes_on(tiny_data, tmp_path):
    """search.job_timeout_s=30 with one candidate made to run 100000 steps (an hour or more), one that hangs in its
    first step (asleep for days) and the others 3 steps (about a second): the two are journaled failed, "timed out
    after 30 s", the others trained, and the search ends with 0."""
    from falsr.search.generation import new_search, propose
    from falsr.search.settings import SearchSettings
    from falsr.space.cost import genome_cost

    settings = SearchSettings(population_size=POPULATION)
    first = [
        o.genome
        for o in propose(new_search(settings, seed=0))
        if genome_cost(o.genome).mult_adds <= settings.constraints.max_mult_adds
    ]
    assert len(first) >= 3  # two faulty candidates and one that trains
    slow_key, hang_key = first[0].key, first[1].key
    app = tmp_path / "slow_search.py"
    app.write_text(SLOW_APP)
    sweep = tmp_path / "sweep"
    proc = run_search(
        search_args(tiny_data, sweep, "search.job_timeout_s=30", generations=0),
        tmp_path,
        script=str(app),
        SLOW_KEY=slow_key,
        HANG_KEY=hang_key,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_key = {r["key"]: r for r in check_journal(sweep)}
    for key in (slow_key, hang_key):
        assert by_key[key]["status"] == "failed" and "TimeoutError: timed out after 30 s" in by_key[key]["error"]
    others = [r for k, r in by_key.items() if k not in (slow_key, hang_key)]
    assert len(by_key) == POPULATION and any(r["status"] == "ok" for r in others)
    assert all(r["status"] in ("ok", "over_mult_adds_cap") for r in others), others
    assert {k for k, _ in front(sweep)}.isdisjoint({slow_key, hang_key})


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, fragment",
    [
        ("search.job_timeout_s=0", "search.job_timeout_s=0: use a number of seconds > 0, or null for no limit"),
        ("search.job_timeout_s=soon", "search.job_timeout_s=soon"),
        ("search.resume_from_journal=maybe", "search.resume_from_journal=maybe"),
    ],
)
def test_bad_fault_options_are_one_line(override, fragment, tmp_path):
    proc = run_search(["+search=nsga2", override, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, timeout=120)
    assert fragment in one_line(proc)


# -- a full disk ----------------------------------------------------------------------------------------------------


class SmallDisk:
    """A tmpfs mounted at ``path`` (root only): a disk that fills at a size of our choosing, enlarged in place."""

    def __init__(self, path: Path):
        self.path = path

    def mount(self, size: int) -> None:
        self._mount("-t", "tmpfs", "-o", f"size={size}", "falsr-test", str(self.path))

    def resize(self, size: int) -> None:
        self._mount("-o", f"remount,size={size}", str(self.path))

    def _mount(self, *args: str) -> None:
        proc = subprocess.run(["mount", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here (mount: {proc.stderr.strip() or proc.returncode}): the disk-full "
                "tests need root with mount permitted"
            )


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the disk-full tests mount a small tmpfs: run them as root")
    disk = SmallDisk(tmp_path / "disk")
    disk.path.mkdir()
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], capture_output=True)


def pages(folder: Path) -> int:
    """Bytes the files under ``folder`` take on a tmpfs (whole 4 KiB pages)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def one_line_last(proc) -> str:
    """The `error: ` line a search that trained candidates ends with (exit 2, no traceback; Lightning's own notices
    may precede it on stderr)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines and lines[-1].startswith("error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[-1]


def test_a_journal_append_on_a_full_disk_fails_and_leaves_the_journal_as_it_was(small_disk):
    """The disk fills between two appends: the second raises OSError ENOSPC, and the journal holds the first record
    only, with no torn line (the part of the line that fitted is cut off again)."""
    import errno

    from falsr.errors import disk_full
    from falsr.search.journal import Journal, JournalRecord

    small_disk.mount(64 * 1024)
    journal_ = Journal(small_disk.path / "journal.jsonl")
    journal_.append(JournalRecord(key="a", genome="1.2-10_1", generation=0, status="ok"))
    before = journal_.path.read_bytes()
    filler = small_disk.path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # every free page: the next line fits only in the rest of the
    try:  # journal's last page
        while os.write(fd, b"x" * 4096):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    with pytest.raises(OSError) as raised:
        journal_.append(JournalRecord(key="b", genome="1.2-10_1", generation=0, status="ok", error="y" * 5000))
    assert raised.value.errno == errno.ENOSPC and disk_full(raised.value) is raised.value
    assert journal_.path.read_bytes() == before and [r.key for r in journal_.records()] == ["a"]
    filler.unlink()
    journal_.append(JournalRecord(key="b", genome="1.2-10_1", generation=0, status="ok"))
    assert [r.key for r in journal_.records()] == ["a", "b"]


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.25, 0.75], ids=["fills_in_generation_0", "fills_in_generation_1"])
def test_a_full_disk_stops_the_search_in_one_line_and_the_resume_ends_as_uninterrupted(
    fraction, tiny_data, uninterrupted, small_disk
):
    """The sweep folder on a tmpfs a quarter (three quarters) of the size the uninterrupted search takes: the disk
    fills in the initial generation (in generation 1), wherever that is (a job's checkpoint or logs, the journal,
    the state, a report), and the search stops with one line naming the folder and the fix, exit 2, no traceback;
    the journal reads whole, no candidate journaled failed for it. (Tried at 0.1, 0.25, 0.5, 0.75 and 0.9 of the
    size: all passed.) The tmpfs enlarged in place, search.resume ends with the uninterrupted search's journal and
    front."""
    sweep = small_disk.path / "sweep"
    args = search_args(tiny_data, sweep)
    small_disk.mount(int(pages(uninterrupted) * fraction))
    full = run_search(args, small_disk.path.parent)
    line = one_line_last(full)
    assert line.startswith(f"error: no space left on the device of {sweep} (No space left on device"), line
    assert line.endswith(f"then continue with search.resume={sweep} (or the folder's new path)"), line
    before = check_journal(sweep)  # every line whole JSON
    assert all(r["status"] != "failed" for r in before), before
    assert len(before) < POPULATION if fraction < 0.5 else POPULATION < len(before) < POPULATION * (GENERATIONS + 1)

    small_disk.resize(4 * pages(uninterrupted))
    resumed = run_search(args + [f"search.resume={sweep}"], small_disk.path.parent)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_as_uninterrupted(sweep, before, uninterrupted)
