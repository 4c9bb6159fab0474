"""The results file of a bench that measures in one run: bench/results/<name>.json and a generated <name>.md.

The docs cite only committed results files (tests/test_docs.py), so a bench that used to print only writes what it
printed here too, with the command, the commit and the machine it ran on. Written by hand: no library records a
script's measurements together with the command and machine that made them.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").is_file()
        else ""
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True)
    return done.stdout.strip() or None


class Report:
    """Lines printed as they are measured and kept for <name>.md; values kept for <name>.json."""

    def __init__(self, name: str, argv: list[str] | None = None, out: Path | None = None):
        self.name, self.lines, self.values = name, [], {}
        self.command = "python " + " ".join(
            shlex.quote(a) for a in [f"bench/{Path(sys.argv[0]).name}", *(sys.argv[1:] if argv is None else argv)]
        )
        self.out = out if out is not None else RESULTS

    def print(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def write(self, **values) -> Path:
        self.values.update(values)
        meta = {
            "command": self.command,
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
        }
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.name}.json"
        path.write_text(json.dumps({**meta, **self.values}, indent=1, default=float) + "\n")
        m = meta["machine"]
        head = (
            f"# {self.command}\n\nWritten by that command at commit {meta['commit']} on {meta['date']}: {m['cpu']}, "
            f"{m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads"
            f"{', ' + m['cuda'] if m['cuda'] else ''}. The values are in {self.name}.json.\n\n"
        )
        (self.out / f"{self.name}.md").write_text(head + "```\n" + "\n".join(self.lines) + "\n```\n")
        print(f"wrote {path} and {self.name}.md")
        return path
