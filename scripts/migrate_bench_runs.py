"""Move the bench run store to the `budget/` config group: `trainer=<budget>` becomes `budget=<budget>`.

A stored training run (bench/_runs.py) is keyed by a hash of its sorted overrides, so renaming the group
changes every key. This script rewrites the store in place so the benches find their runs again:

* every record's ``overrides``: ``trainer=<name>`` -> ``budget=<name>`` for each budget in conf/budget/;
* its ``key`` = ``run_key(overrides)`` of the new overrides, its ``run_dir`` the folder of that key;
* a child of an inheritance recipe (``e80_inherit``) names its parent's weights by the parent's key
  (``model.inherit_from=['outputs/bench-runs/<parent key>/weights.pt']``): the path gets the parent's new
  key, and the child's key is computed from that (parents are mapped first);
* the git-ignored run folders ``outputs/bench-runs/<old key>`` are renamed ``<new key>`` where present;
* the evaluation stores keyed by run key (bench/results/**/evals.jsonl: the showdown's) get the new keys;
* bench/results/search_efficiency_real.jsonl keys its runs by a config id that hashes the objective's
  description, which names the budget (`budget=search`): each stored id is recomputed with the old name
  from what its records say (CPU budget, population, cells, methods) and, where it matches, replaced by the
  id the bench computes now (an id that does not match is reported and left as it is).

Idempotent: a migrated record maps to itself, so rerun it after merging a store that gained lines with
the old names (the old key of a migrated parent is recomputed from its overrides). A merge of a branch that
appended to runs.jsonl conflicts there (every line changed here): take that branch's file as a whole
(`git checkout --theirs bench/results/runs.jsonl` when merging it into this one, `--ours` the other way),
rerun this script, then `git add` it. Lines are kept in order,
one per line, and the store is rewritten in place under the lock the benches append with.

    python scripts/migrate_bench_runs.py [--store bench/results/runs.jsonl] [--runs-dir outputs/bench-runs]
                                         [--evals bench/results/showdown/evals.jsonl ...]
                                         [--efficiency bench/results/search_efficiency_real.jsonl] [--dry-run]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _runs import RUNS_DIR, STORE, run_key  # noqa: E402  (the benches' own key)

BUDGETS = tuple(sorted(p.stem for p in (REPO / "conf" / "budget").glob("*.yaml")))
# A run folder named in an override (model.inherit_from): outputs/bench-runs/<12 hex digits>/...
KEY_IN_PATH = re.compile(r"(outputs/bench-runs/)([0-9a-f]{12})(?=/)")


def rename_group(override: str, old: str, new: str) -> str:
    """`<old>=<budget>` -> `<new>=<budget>` (with a `+`/`++` prefix kept); anything else unchanged."""
    m = re.fullmatch(r"(\+{0,2})" + re.escape(old) + r"=(\w+)", override)
    return f"{m.group(1)}{new}={m.group(2)}" if m and m.group(2) in BUDGETS else override


def referenced_keys(overrides: Sequence[str]) -> list[str]:
    return [m.group(2) for o in overrides for m in KEY_IN_PATH.finditer(o)]


def rewrite(overrides: Sequence[str], old: str, new: str, keys: dict[str, str]) -> list[str]:
    """The overrides with the group renamed old -> new and every run key in a path mapped through `keys`."""
    sub: Callable[[re.Match], str] = lambda m: m.group(1) + keys.get(m.group(2), m.group(2))
    return [KEY_IN_PATH.sub(sub, rename_group(o, old, new)) for o in overrides]


def key_map(records: Sequence[dict]) -> tuple[dict[str, str], list[str]]:
    """old key -> new key for every record (a new key maps to itself), parents before children.

    A record's old form is its overrides with `budget=` back to `trainer=` and the run keys in its paths
    mapped back; its new form the other way round. Both follow from the keys of the runs it names, so a
    record waits while a run it names (by its stored key) is itself waiting. Returns the map and the
    named keys that no record has.
    """
    old_to_new: dict[str, str] = {}
    new_to_old: dict[str, str] = {}
    pending = list(records)
    while pending:
        waiting = {r["key"] for r in pending}
        ready = [r for r in pending if not waiting.intersection(referenced_keys(r["overrides"]))]
        if not ready:  # a cycle (a run naming itself): no order helps, map them as they are
            ready = pending
        for r in ready:
            new = run_key(rewrite(r["overrides"], "trainer", "budget", old_to_new))
            old = run_key(rewrite(r["overrides"], "budget", "trainer", new_to_old))
            old_to_new[old], new_to_old[new] = new, old
            old_to_new.setdefault(new, new)
        pending = [r for r in pending if not any(r is q for q in ready)]
    missing = sorted({k for r in records for k in referenced_keys(r["overrides"])} - set(old_to_new))
    return old_to_new, missing


def migrate_record(rec: dict, keys: dict[str, str]) -> dict:
    overrides = rewrite(rec["overrides"], "trainer", "budget", keys)
    new_key = run_key(overrides)
    out = {**rec, "key": new_key, "overrides": overrides}
    if rec.get("run_dir"):
        out["run_dir"] = KEY_IN_PATH.sub(lambda m: m.group(1) + keys.get(m.group(2), m.group(2)), rec["run_dir"] + "/")
        out["run_dir"] = out["run_dir"].rstrip("/")
    return out


def rewrite_locked(path: Path, transform: Callable[[list[dict]], list[dict]], dry_run: bool) -> tuple[int, int]:
    """Apply `transform` to the JSON lines of `path` in place, under the benches' append lock.

    In place (not a new file), so a bench appending meanwhile waits for the lock and then appends to this
    very file. Returns (lines, lines changed)."""
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        lines = [line for line in f.read().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
        new = transform(records)
        text = [json.dumps(r) for r in new]
        changed = sum(a != b for a, b in zip(lines, text))
        if changed and not dry_run:
            f.seek(0)
            f.write("\n".join(text) + "\n")
            f.truncate()
            f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
    return len(lines), changed


def rename_folders(keys: dict[str, str], runs_dir: Path, dry_run: bool) -> tuple[int, list[str]]:
    """outputs/bench-runs/<old> -> <new>; never over an existing folder (reported instead)."""
    renamed, clashes = 0, []
    for old, new in sorted(keys.items()):
        src, dst = runs_dir / old, runs_dir / new
        if old == new or not src.is_dir():
            continue
        if (runs_dir / f"{old}.lock").exists():
            clashes.append(f"{src}: a bench holds its lock ({old}.lock): rerun when it has finished")
        elif dst.exists():
            clashes.append(f"{src}: {dst.name} exists too: left as it is (delete the one you do not want, rerun)")
        else:
            if not dry_run:
                src.rename(dst)
            renamed += 1
    return renamed, clashes


def efficiency_config_ids(records: Sequence[dict]) -> tuple[dict[str, str], list[str]]:
    """old -> new config id of bench/search_efficiency.py --cpu-budget runs (their `config`), and the ids that
    could not be reproduced. A run's id hashes the CPU budget, population, cells, the objective's description
    and each method's composed settings (bench/_timed_efficiency.config_id); the records give all but the
    crowding mode, so both modes are tried."""
    import _objectives  # bench/, on the path above

    describe = _objectives.describe
    now_text = describe()
    old_text = " ".join(rename_group(w, "budget", "trainer") for w in now_text.split(" "))
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["config"], []).append(r)
    mapping, failed = {}, []
    try:
        for cid, runs in groups.items():
            found = _reproduce(cid, runs, old_text, now_text)
            if found is None:
                failed.append(cid)
            else:
                mapping[cid] = found
    finally:
        _objectives.describe = describe
    return mapping, failed


def _reproduce(cid: str, runs: Sequence[dict], old_text: str, now_text: str) -> str | None:
    """The id the bench computes now for `runs`, if `cid` is theirs under the old or the new sentence and one of
    the crowding modes; else None."""
    import argparse
    import importlib

    import _objectives
    import _timed_efficiency

    efficiency = importlib.import_module("search_efficiency")
    gen0 = [h for h in runs[0]["history"] if h["generation"] == 0]
    if not gen0:
        return None
    cells = len(gen0[0]["genome"].split("-")[0].split("."))
    methods = sorted({r["method"] for r in runs})
    args = argparse.Namespace(cpu_budget=float(runs[0]["budget"]), population=len(gen0), cells=cells)
    for crowding in ("improved", "standard"):
        common = [f"space.n_cells={cells}", f"search.settings.population_size={len(gen0)}",
                  f"search.settings.crowding={crowding}"]
        composed = {m: efficiency.compose_method(m, common) for m in methods}
        ids = {}
        for text in (old_text, now_text):
            _objectives.describe = lambda text=text: text  # the id hashes this sentence
            ids[text] = _timed_efficiency.config_id(args, composed)
        if cid in ids.values():
            return ids[now_text]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=STORE, help="the run store to rewrite in place")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="the run folders (git-ignored)")
    parser.add_argument("--evals", type=Path, nargs="*", default=None,
                        help="stores keyed by run key (default: bench/results/**/evals.jsonl)")
    parser.add_argument("--efficiency", type=Path, default=REPO / "bench" / "results" / "search_efficiency_real.jsonl",
                        help="bench/search_efficiency.py --cpu-budget's store (runs keyed by a config id)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(argv)
    if not args.store.is_file():
        print(f"error: no run store at {args.store}: pass --store <runs.jsonl>", file=sys.stderr)
        return 2
    evals = args.evals if args.evals is not None else sorted((REPO / "bench" / "results").glob("**/evals.jsonl"))

    summary: dict = {}

    def migrate_store(records: list[dict]) -> list[dict]:
        keys, missing = key_map(records)
        out = [migrate_record(r, keys) for r in records]
        summary.update(keys=keys, missing=missing, stale=[r["key"] for r in records if r["key"] not in keys],
                       rekeyed=len({r["key"] for r, m in zip(records, out) if r["key"] != m["key"]}))
        return out

    n, changed = rewrite_locked(args.store, migrate_store, args.dry_run)
    keys = summary["keys"]
    verb = "would rewrite" if args.dry_run else "rewrote"
    print(f"{args.store}: {verb} {changed} of {n} records ({summary['rekeyed']} run keys change)")
    for key in summary["stale"]:
        print(f"warning: record key {key} is not the key of its overrides (old or new names): re-keyed from them")
    for key in summary["missing"]:
        print(f"warning: a run names outputs/bench-runs/{key}, which no record of the store is: path left as it is")
    renamed, clashes = rename_folders(keys, args.runs_dir, args.dry_run)
    print(f"{args.runs_dir}: {'would rename' if args.dry_run else 'renamed'} {renamed} run folders")
    for line in clashes:
        print(f"warning: {line}")
    for path in evals:
        if path.is_file():
            m, c = rewrite_locked(path, lambda recs: [{**r, "key": keys.get(r["key"], r["key"])} for r in recs],
                                  args.dry_run)
            print(f"{path}: {verb} {c} of {m} records")
    if args.efficiency.is_file():
        failed: list[str] = []

        def migrate_efficiency(records: list[dict]) -> list[dict]:
            ids, bad = efficiency_config_ids(records)
            failed.extend(bad)
            return [{**r, "config": ids.get(r["config"], r["config"])} for r in records]

        m, c = rewrite_locked(args.efficiency, migrate_efficiency, args.dry_run)
        print(f"{args.efficiency}: {verb} {c} of {m} records")
        for cid in failed:
            print(f"warning: {args.efficiency.name}: config {cid} is not reproduced from its records: left as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
