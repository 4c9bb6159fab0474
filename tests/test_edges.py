"""Bad inputs and edges a new user meets: one line, a truthful exit status (issue 24, item 2)."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from falsr.errors import UserError
from falsr.search.hydra_glue import check_constraints_reachable, infeasible_search_message
from falsr.search.journal import JournalRecord
from falsr.search.settings import Constraints, SearchSettings
from falsr.space.cost import genome_cost, smallest_cost, smallest_genome
from falsr.space.genome import Genome, SearchSpace, num_connection_bits, using_space
from test_search_e2e import REPO, env_for, journal, run_search, search_args

# -- an infeasible constraint set ------------------------------------------------------------------------------


def test_smallest_genome_is_the_minimum_over_a_whole_small_space():
    space = SearchSpace(ops=("conv", "gconv2", "invbottleneck_e2"), channels=(16, 32), repeats=(1, 2), n_cells=2)
    with using_space(space):
        genomes = [
            Genome(cells, bits)
            for cells in itertools.product(range(space.num_choices), repeat=2)
            for bits in itertools.product((0, 1), repeat=num_connection_bits(2))
        ]
        costs = [genome_cost(g) for g in genomes]
        assert genome_cost(smallest_genome(space)).mult_adds == min(c.mult_adds for c in costs)
        assert genome_cost(smallest_genome(space, "params")).params == min(c.params for c in costs)
    assert smallest_cost(space) == type(costs[0])(min(c.params for c in costs), min(c.mult_adds for c in costs))


def test_the_paper_spaces_smallest_network():
    # 1.3G mult-adds and 5.7K params at 480x480 (falsr.search.settings.HypervolumeBox documents the same range).
    assert smallest_cost() == type(smallest_cost())(params=5657, mult_adds=1312358400)
    assert smallest_cost(lr_size=(240, 240)).mult_adds == 1312358400 // 4


def test_a_cap_below_the_smallest_network_is_refused_before_training():
    check_constraints_reachable(SearchSettings(constraints=Constraints(max_mult_adds=1.4e9)))
    check_constraints_reachable(SearchSettings(constraints=Constraints(max_mult_adds=None)))
    with pytest.raises(
        UserError,
        match=r"max_mult_adds=1 mult-adds, but the smallest network of the search space "
        r"has 1.31G at 480x480 .* at least 1.313e9",
    ):
        check_constraints_reachable(SearchSettings(constraints=Constraints(max_mult_adds=1)))


def test_no_feasible_candidate_at_the_end_is_explained():
    settings = SearchSettings(constraints=Constraints(min_psnr=40.0, max_mult_adds=2e9))
    over = [
        JournalRecord(key=k, genome="1.2-10_1", generation=0, status="over_mult_adds_cap", mult_adds=m, params=1)
        for k, m in (("a", 5e9), ("b", 3.21e9))
    ]
    message = infeasible_search_message(over, settings)
    assert "max_mult_adds=2e9 (2G)" in message and "smallest of the 2 candidates proposed had 3.21G" in message
    assert "(to 3.21e9 or more, or null: no cap)" in message
    with using_space(SearchSpace(n_cells=2)):
        ok = [
            JournalRecord(
                key=Genome.from_string("1.2-10_1").key,
                genome="1.2-10_1",
                generation=0,
                status="ok",
                psnr=28.5,
                mult_adds=1.5e9,
                params=1e3,
            )
        ]
        message = infeasible_search_message(over + ok, settings)
        assert "min_psnr=40" in message and "best of the 1 trained candidates reached 28.50 dB" in message
        assert infeasible_search_message(over + ok, SearchSettings(constraints=Constraints(max_mult_adds=2e9))) is None
    assert infeasible_search_message([], settings) is None  # nothing at all: nothing to explain here


def test_a_floor_no_candidate_reaches_is_explained():
    settings = SearchSettings(constraints=Constraints(min_mult_adds=900e9, max_mult_adds=950e9))
    under = [
        JournalRecord(key=k, genome="1.2-10_1", generation=0, status="under_mult_adds_floor", mult_adds=m, params=1)
        for k, m in (("a", 5e9), ("b", 321e9))
    ]
    over = [
        JournalRecord(key="c", genome="1.2-10_1", generation=0, status="over_mult_adds_cap", mult_adds=990e9, params=1)
    ]
    message = infeasible_search_message(under + over, settings)
    assert message.startswith(
        "no candidate met the constraints: search.settings.constraints.min_mult_adds=9e11 "
        "(900G) and search.settings.constraints.max_mult_adds=9.5e11 (950G), but the largest of "
        "the 2 candidates under the floor had 321G mult-adds"
    ), message
    assert "lower the floor (or null: no floor), or widen the band" in message


def _one_error_line(proc, alone: bool = True) -> str:
    """The one `error: ` line a failed run ends with (exit 2, no traceback); `alone`: stderr holds nothing else
    (False where candidates trained: Lightning writes its own notices there)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 or not alone, proc.stderr[-3000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, proc.stderr[-3000:]
    return lines[-1]


@pytest.mark.slow
def test_an_unreachable_cap_fails_in_one_line_before_any_job(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    line = _one_error_line(
        run_search(search_args(tiny_data, sweep, "search.settings.constraints.max_mult_adds=1"), tmp_path, timeout=120)
    )
    assert "no candidate can meet the constraints: search.settings.constraints.max_mult_adds=1" in line
    assert "1.31G" in line and "at least 1.313e9" in line
    assert not (sweep / "journal.jsonl").exists()  # nothing was launched


@pytest.mark.slow
def test_a_search_with_no_feasible_candidate_exits_non_zero(tiny_data, tmp_path):
    # Reachable (the space's smallest network is 1.31G) but never proposed: every candidate is over the cap.
    sweep = tmp_path / "sweep"
    line = _one_error_line(
        run_search(
            search_args(tiny_data, sweep, "search.settings.constraints.max_mult_adds=1.4e9"), tmp_path, timeout=300
        )
    )
    assert "no candidate met the constraints: search.settings.constraints.max_mult_adds=1.4e9 (1.4G)" in line
    assert all(r["status"] == "over_mult_adds_cap" for r in journal(sweep))
    assert json.loads((sweep / "pareto.json").read_text())["front"] == []


@pytest.mark.slow
def test_a_min_psnr_no_candidate_reaches_exits_non_zero(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    line = _one_error_line(
        run_search(
            search_args(tiny_data, sweep, "search.generations=0", "search.settings.constraints.min_psnr=99"),
            tmp_path,
            timeout=300,
        ),
        alone=False,
    )
    assert "no candidate met the constraints: search.settings.constraints.min_psnr=99, but the best of the" in line
    assert "lower it" in line and str(sweep) in line
    assert any(r["status"] == "ok" for r in journal(sweep))  # trained, reported, and still a failure


@pytest.mark.slow
def test_a_bad_optimizer_value_stops_a_search_before_any_job(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    line = _one_error_line(run_search(search_args(tiny_data, sweep, "optimizer.lr=-1"), tmp_path, timeout=120))
    assert line == "error: optimizer.lr=-1: Invalid learning rate: -1"
    assert not (sweep / "journal.jsonl").exists()


# -- bad values of the objects train.py instantiates --------------------------------------------------------------


def run_train(*args: str, cwd):
    env = {**env_for(cwd), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["optimizer.lr=-1"], "error: optimizer.lr=-1: Invalid learning rate: -1"),
        (["optimizer.betas=[1.5,0.9]"], "error: optimizer.betas=[1.5,0.9]: Invalid beta parameter at index 0: 1.5"),
        (["+optimizer.foo=2"], "error: optimizer.foo=2: Adam.__init__() got an unexpected keyword argument 'foo'"),
        (["scheduler=step", "scheduler.step_size=0"], "error: scheduler.step_size=0: integer modulo by zero"),
        (
            ["scheduler._target_=torch.optim.lr_scheduler.Nope"],
            "error: scheduler._target_=torch.optim.lr_scheduler.Nope: Error locating target 'torch.optim.lr_scheduler.Nope' "
            "(the configs of scheduler=: constant, step, warmup_cosine)",
        ),
        (
            ["callbacks=none", "budget=search"],
            "error: callbacks.learning_curve sets val_steps but has no _target_: the callbacks group chosen (e.g. "
            "callbacks=none) leaves it out; choose callbacks=default or set callbacks.learning_curve=null",
        ),
        (
            ["trainer.max_steps=-5", "trainer.precision=32"],
            "error: trainer.max_steps=-5: `max_steps` must be a non-negative integer or -1 (infinite steps). "
            "You passed in -5.",
        ),
    ],
)
def test_bad_values_of_instantiated_objects_are_one_line(args, expected, data_dir, tmp_path):
    proc = run_train(
        f"paths.data_dir={data_dir}",
        "logger=none",
        "trainer.max_steps=3",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.samples_per_epoch=12",
        f"hydra.run.dir={tmp_path / 'run'}",
        *args,
        cwd=tmp_path,
    )
    assert _one_error_line(proc) == expected
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and expected[len("error: ") :] in metrics["error"]  # nothing trained


# -- what pareto.md and the plots measure, and against what --------------------------------------------------------


def test_cost_tick_labels():
    from falsr.search.report import cost_label

    assert [cost_label(v) for v in (12e9, 25e9, 50e9, 1e12, 5e8, 1.2e6, 5657, 100e3, 1e9, 0.5, 0)] == [
        "12G",
        "25G",
        "50G",
        "1T",
        "500M",
        "1.2M",
        "5.66K",
        "100K",
        "1G",
        "0.5",
        "0",
    ]


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (8e9, 120e9, ["10G", "15G", "20G", "30G", "50G", "70G", "100G"]),
        (1e9, 1e12, ["1G", "2G", "5G", "10G", "20G", "50G", "100G", "200G", "500G", "1T"]),
        (80e3, 180e3, ["80K", "100K", "120K", "150K"]),
    ],
)
def test_cost_axis_ticks_on_a_log_axis(low, high, expected):
    import matplotlib.pyplot as plt

    from falsr.search.report import cost_axis

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    cost_axis(ax.xaxis, low, high)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    plt.close(fig)
    assert labels == expected


def test_bicubic_reference_is_the_protocols(data_dir):
    from falsr.protocol.benchmarks import list_pairs
    from falsr.search.report import bicubic_scores

    scores = bicubic_scores(list_pairs(data_dir / "benchmarks" / "Set5"))
    assert scores["images"] == 5 and round(scores["psnr"], 2) == 33.64  # README: bicubic on Set5, 33.64 dB


@pytest.mark.slow
def test_pareto_md_says_what_its_psnrs_measure(tiny_data, tmp_path):
    from falsr.protocol.benchmarks import list_pairs
    from falsr.search.report import bicubic_scores

    sweep = tmp_path / "sweep"
    proc = run_search(search_args(tiny_data, sweep, "search.generations=0"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (sweep / "pareto.md").read_text()
    bicubic = bicubic_scores(list_pairs(tiny_data / "benchmarks" / "Tiny"))["psnr"]
    assert "on the validation set `Tiny`: Tiny, 1 image (" in text
    assert (
        "each candidate after 3 training steps, batch 4, 32x32 HR patches (recipe: budget=search data.holdout=0 "
        "data.val_sets=[Tiny] trainer.max_steps=3 "
    ) in text
    assert f"Bicubic on the same images: {bicubic:.2f} dB" in text
    front = json.loads((sweep / "pareto.json").read_text())["front"]
    assert f"| {front[0]['psnr'] - bicubic:+.2f} dB |" in text or len(front) > 1  # each model against bicubic
    context = json.loads((sweep / "report_context.json").read_text())
    assert context["steps"] == 3 and context["val_set"] == "Tiny" and context["bicubic"]["psnr"] == bicubic
    # Cached: a resume (or a later generation) reuses it; another validation set would recompute it.
    from falsr.search.report import _pairs_key

    assert context["pairs_key"] == _pairs_key(list_pairs(tiny_data / "benchmarks" / "Tiny"), 2)


# -- a journal line cut in half by a kill mid-write ------------------------------------------------------------------

# A search whose candidate job SIGKILLs the whole search (basic launcher: the job runs in its process) when it starts
# and KILL_AT candidates are already trained: a kill at a known point, not a race against a timer.
KILLING_APP = """
import json, os, signal
from pathlib import Path
import hydra
from falsr.cli import CONF_DIR
from falsr.training.train import train

@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg):
    journal = Path(os.environ["SWEEP"]) / "journal.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    if sum('"job_num"' in line for line in lines) >= int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return train(cfg)

if __name__ == "__main__":
    main()
"""


def complete_records(sweep) -> list[dict]:
    out = []
    for line in (sweep / "journal.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@pytest.mark.slow
def test_a_journal_line_cut_by_a_kill_is_skipped_with_a_warning_and_retrained(tiny_data, tmp_path):
    app = tmp_path / "killing_search.py"
    app.write_text(KILLING_APP)
    sweep = tmp_path / "sweep"
    args = search_args(tiny_data, sweep, "search.settings.constraints.max_mult_adds=null")  # every candidate trains
    killed = subprocess.run(
        [sys.executable, str(app), *args],
        cwd=REPO,
        env={**env_for(tmp_path), "SWEEP": str(sweep), "KILL_AT": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    lines = (sweep / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (sweep / "search_state.pt").is_file()
    first, cut = json.loads(lines[0]), json.loads(lines[1])
    # The kill lands in the middle of the second record's write: half a line, no newline.
    (sweep / "journal.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])

    resumed = run_search(args + [f"search.resume={sweep}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    warnings = [line for line in out.splitlines() if "line 2 is cut short" in line]
    assert len(warnings) == 1 and "trained again" in warnings[0], out[-3000:]
    assert "Traceback" not in out

    records = complete_records(sweep)
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 4 * 2  # every candidate of both generations once, none lost
    assert records[0] == first  # the whole record is kept, not trained again
    retrained = next(r for r in records if r["key"] == cut["key"])
    assert retrained["status"] == "ok" and retrained["job_num"] != cut["job_num"]  # the cut one is trained again
    assert (sweep / "journal.jsonl").read_text().splitlines()[1] == lines[1][: len(lines[1]) // 2]  # left as it was


def test_pareto_md_with_rungs_and_bicubic():
    from falsr.search.report import pareto_markdown

    front = [
        JournalRecord(
            key="k1",
            generation=0,
            genome="1.2-10_1",
            status="ok",
            psnr=30.5,
            ssim=0.9,
            mult_adds=2e9,
            params=2e3,
            rung=1,
            steps=300,
        ),
        JournalRecord(
            key="k2",
            generation=1,
            genome="2.2-10_1",
            status="ok",
            psnr=31.0,
            ssim=0.9,
            mult_adds=1e9,
            params=1e3,
            rung=0,
            steps=100,
        ),
    ]
    context = {
        "steps": 300,
        "rungs": [100, 300],
        "batch_size": 16,
        "patch_size": 64,
        "budget": "search",
        "val_set": "holdout",
        "val_images": "8 training images held out",
        "scale": 2,
        "bicubic": {"psnr": 29.0, "ssim": 0.85},
    }
    text = pareto_markdown(front, context)
    assert (
        "each candidate after the training steps of its highest rung, search.fidelity.rungs=[100,300] (the rung "
        "column), batch 16, 64x64 HR patches (recipe: budget=search)."
    ) in text
    assert "| model | mult-adds | params | PSNR/SSIM | vs bicubic | rung (steps) | genome |" in text
    rows = [line for line in text.splitlines() if line.startswith("| g")]
    assert rows[0].startswith("| g0-k1 |") and "| +1.50 dB | 1 (300) |" in rows[0]  # highest rung first
    assert "| +2.00 dB | 0 (100) |" in rows[1]


def test_plots_of_a_search_with_nothing_trained(tmp_path):
    from falsr.search.report import write_reports

    context = {
        "steps": 3,
        "batch_size": 4,
        "patch_size": 32,
        "val_set": "holdout",
        "val_images": "4 images",
        "bicubic": {"psnr": 30.0, "ssim": 0.9},
    }
    over = [
        JournalRecord(key="a", genome="1.2-10_1", generation=0, status="over_mult_adds_cap", mult_adds=5e9, params=1)
    ]
    summary = write_reports(tmp_path, over, None, context=context)
    assert summary["front"] == [] and all(Path(p).stat().st_size > 1000 for p in summary["plots"])
    assert "Bicubic on the same images: 30.00 dB" in (tmp_path / "pareto.md").read_text()
