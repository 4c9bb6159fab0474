"""A search on PSNR against latency, its front in milliseconds (issue 26): the README's example.

    python bench/latency_search.py            # the table (resumes), the search (resumes; skipped once done), reports

1. The lookup table for conf/experiment/latency_search.yaml's space under search.latency's defaults (onnxruntime
   fp32, 1 thread, the LR of a 1280x720 output): `python -m falsr.latency profile backend=onnxruntime
   precision=fp32 space.n_cells=4 'space.channels=[16,32]'`, resumed where a kill left it.
2. `python search.py +search=nsga2 experiment=latency_search`: PSNR against the table's predicted milliseconds;
   when it ends, its final front is measured end to end (front_latency.json).
3. bench/results/latency_search/: pareto.json / .md, front_latency.json / .md (measured against predicted),
   front_psnr_vs_latency.png, journal.jsonl, search_config.yaml and search_done.json (command, CPU time).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import showdown

REPO = showdown.REPO
EXPERIMENT = "latency_search"
FILES = (
    "journal.jsonl",
    "pareto.json",
    "pareto.md",
    "search_config.yaml",
    "front_latency.json",
    "front_latency.md",
    "front_psnr_vs_latency.png",
)


def space_overrides() -> list[str]:
    """The experiment's space as command-line overrides (the profile command composes no experiment)."""
    conf = yaml.safe_load((REPO / "conf" / "experiment" / f"{EXPERIMENT}.yaml").read_text())
    return [f"space.{k}={v}".replace(" ", "") for k, v in conf["space"].items()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / EXPERIMENT)
    parser.add_argument("--sweep", type=Path, default=REPO / "multirun" / EXPERIMENT)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the search's jobs")
    args = parser.parse_args(argv)
    profile = [sys.executable, "-m", "falsr.latency", "profile", "backend=onnxruntime", "precision=fp32"]
    showdown.log("table: " + " ".join(profile[1:] + space_overrides()))
    subprocess.run(profile + space_overrides(), cwd=REPO, check=True)
    summary = showdown.run_search(
        args.results, args.sweep, [], args.threads, experiment=EXPERIMENT, folder=".", files=FILES
    )
    showdown.log(f"done: {summary['candidates']} candidates; reports in {args.results}")


if __name__ == "__main__":
    main()
