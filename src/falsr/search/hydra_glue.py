"""From the `search` config node to the driver, and the W&B / full-training ends of a search."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from falsr.errors import UserError
from falsr.latency import LatencySettings
from falsr.search.callbacks import ESTIMATORS, job_outcome
from falsr.search.driver import candidate_overrides
from falsr.search.generation import Offspring
from falsr.search.journal import JournalRecord
from falsr.search.settings import Fidelity, HypervolumeBox, SearchConfig, SearchSettings
from falsr.search.toolbox import ENTRIES, build_toolbox, paper_toolbox
from falsr.space.cost import DEFAULT_LR_SIZE
from falsr.space.genome import parse_genome

log = logging.getLogger(__name__)


def search_settings(search: DictConfig) -> SearchSettings:
    data = OmegaConf.to_container(search.settings, resolve=True)
    try:
        return SearchSettings.from_dict(data)
    except (TypeError, ValueError) as err:  # an unknown key, a bad value
        raise UserError(f"bad search.settings: {err}") from None


CAP_KEY = "search.settings.constraints.max_mult_adds"
MIN_PSNR_KEY = "search.settings.constraints.min_psnr"
FLOOR_KEY = "search.settings.constraints.min_mult_adds"
LATENCY_CAP_KEY = "search.settings.constraints.max_latency_ms"


def _giga(value: float) -> str:
    """Mult-adds for people: 1.31G, 250M, 1."""
    for unit, scale in (("G", 1e9), ("M", 1e6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def _as_typed(value: float) -> str:
    """A number as one would type it in an override: 1.4e9, 1, 0.5."""
    return f"{value:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _round_up(value: float, digits: int) -> tuple[int, int]:
    """(mantissa, exponent): `value` rounded up to `digits` significant digits, mantissa * 10**exponent."""
    exponent = math.floor(math.log10(value)) - (digits - 1)
    return math.ceil(value / 10**exponent - 1e-9), exponent


def _at_least(value: float) -> str:
    """`value` rounded up to 4 significant digits, as a config value (1312358400 -> 1.313e9)."""
    if value <= 0:
        return f"{value:g}"
    mantissa, exponent = _round_up(value, 4)
    return f"{mantissa / 1000:g}e{exponent + 3}"


def _ms_at_least(value: float) -> str:
    """Milliseconds rounded up to 3 significant digits, as a config value (1.2341 -> 1.24)."""
    if value <= 0:
        return f"{value:g}"
    mantissa, exponent = _round_up(value, 3)
    return f"{mantissa * 10**exponent:.3g}"


def check_constraints_reachable(settings: SearchSettings, objectives=None) -> None:
    """Refuse, before anything is trained, a mult-adds cap below the smallest network the search space has
    (at the search's LR size), or a latency cap below the fastest network the latency table predicts: no
    candidate could ever be trained. One line naming the key, the smallest (fastest) network's mult-adds
    (milliseconds) and a value that works. `objectives`: whose ``search.latency`` settings name the table (None:
    the active ones); with a latency cap their table must be complete for the space (Objectives.check_table)."""
    from falsr.space.cost import smallest_cost

    check_latency_cap_reachable(settings, objectives)
    cap = settings.constraints.max_mult_adds
    if cap is None:
        return
    smallest = smallest_cost(lr_size=settings.lr_size, scale=settings.scale)
    if smallest.mult_adds > cap:
        h, w = settings.lr_size
        raise UserError(
            f"no candidate can meet the constraints: {CAP_KEY}={_as_typed(cap)} mult-adds, but the "
            f"smallest network of the search space has {_giga(smallest.mult_adds)} at {h}x{w} "
            f"(search.settings.lr_size); raise it to at least {_at_least(smallest.mult_adds)} "
            f"(or null: no cap), or search a smaller space (space.*)"
        )


def check_latency_cap_reachable(settings: SearchSettings, objectives=None) -> None:
    """The latency half of :func:`check_constraints_reachable`: the fastest network of the active space by the
    table (exact, :func:`falsr.latency.table.fastest_genome`) must meet ``max_latency_ms``."""
    cap = settings.constraints.max_latency_ms
    if cap is None:
        return
    from falsr.latency.table import fastest_genome, table_for
    from falsr.search.objectives import active_objectives

    latency = (objectives or active_objectives()).latency_settings()
    genome, fastest = fastest_genome(table_for(latency))
    if fastest > cap:
        raise UserError(
            f"no candidate can meet the constraints: {LATENCY_CAP_KEY}={_as_typed(cap)} ms, but the fastest "
            f"network of the search space is predicted at {fastest:.3g} ms by the latency table "
            f"({latency.describe()}; {genome.to_string()}); raise it to at least {_ms_at_least(fastest)} "
            f"(or null: no cap), or search a smaller space (space.*)"
        )


def infeasible_search_message(records: Sequence[JournalRecord], settings: SearchSettings) -> str | None:
    """Why a finished search has no feasible candidate (None when it has one, or when nothing trained because
    every job failed, which is reported separately): the constraint no candidate met, the closest any came to
    it, and how to fix it."""
    from falsr.search.journal import STATUS_OK, STATUS_OVER_CAP, STATUS_OVER_LATENCY, STATUS_UNDER_FLOOR
    from falsr.search.report import pareto_records
    from falsr.space.cost import smallest_cost

    constraints = settings.constraints
    if pareto_records(records, constraints):
        return None
    ok = [r for r in records if r.status == STATUS_OK]
    over = [r for r in records if r.status == STATUS_OVER_CAP]
    under = [r for r in records if r.status == STATUS_UNDER_FLOOR]
    slow = [r for r in records if r.status == STATUS_OVER_LATENCY]
    if not ok and slow and not over and not under:  # every one over the latency cap (search.latency's table)
        seen = min(float(r.latency_ms) for r in slow)
        return (
            f"no candidate met the constraints: {LATENCY_CAP_KEY}={_as_typed(constraints.max_latency_ms)}, but the "
            f"fastest of the {len(slow)} candidates proposed was "
            f"predicted at {seen:.3g} ms by the latency table; nothing was trained: raise it (to {_ms_at_least(seen)} or "
            "more, or null: no cap)"
        )
    if not ok and over and not under:
        cap = constraints.max_mult_adds
        seen = min(float(r.mult_adds) for r in over)
        possible = smallest_cost(lr_size=settings.lr_size, scale=settings.scale).mult_adds
        return (
            f"no candidate met the constraints: {CAP_KEY}={_as_typed(cap)} ({_giga(cap)}), but the smallest of "
            f"the {len(over)} candidates proposed had {_giga(seen)} mult-adds (the search space's smallest "
            f"network: {_giga(possible)}); nothing was trained: raise the cap (to {_at_least(seen)} or more, or "
            "null: no cap)"
        )
    if not ok and under:
        floor, cap = constraints.min_mult_adds, constraints.max_mult_adds
        seen = max(float(r.mult_adds) for r in under)
        band = f" and {CAP_KEY}={_as_typed(cap)} ({_giga(cap)})" if over and cap is not None else ""
        return (
            f"no candidate met the constraints: {FLOOR_KEY}={_as_typed(floor)} ({_giga(floor)}){band}, but the "
            f"largest of the {len(under)} candidates under the floor had {_giga(seen)} mult-adds; nothing was "
            "trained: lower the floor (or null: no floor)" + (", or widen the band" if band else "")
        )
    if ok and constraints.min_psnr is not None:
        best = max(float(r.psnr) for r in ok)
        return (
            f"no candidate met the constraints: {MIN_PSNR_KEY}={_as_typed(constraints.min_psnr)}, but the best "
            f"of the {len(ok)} trained candidates reached {best:.2f} dB; lower it (to {best:.2f} or less, or null) "
            "or train longer (budget=...)"
        )
    return None


def fidelity_settings(search: DictConfig) -> Fidelity:
    """``search.fidelity`` checked: a bad option is one line, before anything runs."""
    data = OmegaConf.to_container(search.get("fidelity") or {}, resolve=True)
    try:
        return Fidelity(**data)
    except (TypeError, ValueError) as err:
        raise UserError(str(err) if str(err).startswith("search.fidelity") else f"bad search.fidelity: {err}") from None


def toolbox_config(search: DictConfig) -> dict:
    """The ``toolbox`` node as a plain dict (the paper's operators where it is absent), checked by building it."""
    if search.get("toolbox") is None:
        return paper_toolbox()
    config = OmegaConf.to_container(search.toolbox, resolve=True)
    if not isinstance(config, dict):
        raise UserError(f"search.toolbox must be a mapping of {', '.join(ENTRIES)}, got {config!r}")
    build_toolbox(config, search=None)  # a bad entry fails here, in one line, before the search starts
    return config


def search_config(search: DictConfig) -> SearchConfig:
    """The ``search`` node as its schema's dataclass, what the driver runs, with every part checked: a bad value is
    one line before anything runs (the toolbox is built once here to check it)."""
    if search.get("estimator", "final") not in ESTIMATORS:
        raise UserError(f"search.estimator={search.get('estimator')!r}: choose one of {', '.join(ESTIMATORS)}")
    if not int(search.get("estimate_at", 1)) > 0:
        raise UserError(f"search.estimate_at={search.get('estimate_at')}: a number of training steps > 0")
    timeout = search.get("job_timeout_s")
    if timeout is not None and not float(timeout) > 0:
        raise UserError(f"search.job_timeout_s={float(timeout):g}: use a number of seconds > 0, or null for no limit")
    data = OmegaConf.to_container(search, resolve=True)
    data.update(
        settings=search_settings(search),
        fidelity=fidelity_settings(search),
        hypervolume_box=HypervolumeBox(**(data.get("hypervolume_box") or {})),
        latency=LatencySettings.from_dict(data.get("latency") or {}),
        toolbox=toolbox_config(search),
    )
    try:
        return SearchConfig(**data)
    except (TypeError, ValueError) as err:  # a key the schema lacks (a config composed without it)
        raise UserError(f"bad search config: {err}") from None


def job_overrides(search: SearchConfig, arguments: Sequence[str]) -> tuple[str, ...]:
    """What every candidate job adds to its own overrides: ``arguments`` (the command line's) and, with
    ``search.job_timeout_s``, the limit after which the job ends itself (falsr.training.train)."""
    timeout = search.job_timeout_s
    return (*arguments, *([f"job_timeout_s={float(timeout):g}"] if timeout is not None else []))


def engine_launcher(launcher) -> bool:
    """Whether the launcher hands jobs to a cluster engine that can kill one of them (SLURM, Ray)."""
    cls = type(launcher)
    return (
        cls.__module__.startswith("hydra_plugins.hydra_submitit_launcher") and cls.__name__ == "SlurmLauncher"
    ) or cls.__module__.startswith("hydra_plugins.hydra_ray_launcher")


def launch_each(launcher, batch: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """The batch as one launcher call per job, all in flight at once; a job that raises fails alone.

    Hydra's submitit and Ray launchers collect a batch's results in one list: a job the engine killed
    (scancel, a lost Ray worker) raises out of the whole batch while the other jobs still run. Launched one
    by one, it becomes that job's failed JobReturn and the search goes on.
    """
    from hydra.core.utils import JobReturn, JobStatus

    if type(launcher).__module__.startswith("hydra_plugins.hydra_ray_launcher"):
        _start_ray(launcher)  # once, here: concurrent launches would each call ray.init

    def one(i: int):
        try:
            return launcher.launch([list(batch[i])], initial_job_idx=initial_job_idx + i)[0]
        except Exception as err:  # noqa: BLE001 - any engine error is this job's failure
            first = (str(err).strip().splitlines() or [""])[0]
            log.warning(f"job #{initial_job_idx + i} gave no result: {type(err).__name__}: {first}")
            failed = JobReturn(status=JobStatus.FAILED)
            failed.return_value = err  # the public setter; reading it re-raises err
            return failed

    with ThreadPoolExecutor(max_workers=len(batch)) as pool:
        return list(pool.map(one, range(len(batch))))


def _start_ray(launcher) -> None:
    """ray.init as hydra-ray-launcher does it, but its default object store size only for a new local Ray:
    ray.init refuses any object_store_memory when it connects to a cluster (hydra.launcher.ray.init.address)."""
    from omegaconf import open_dict

    from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

    init = launcher.ray_cfg.init
    if not init.get("address"):
        with open_dict(init):
            init.setdefault("object_store_memory", 78643200)
    start_ray(init)


CANDIDATE_COLUMNS = (
    "name",
    "key",
    "generation",
    "origin",
    "status",
    "rung",
    "steps",
    "psnr",
    "ssim",
    "mult_adds",
    "params",
    "train_seconds",
    "n_cells",
    "connections",
    "cells",
    "genome",
    "parents",
    "error",
    "run_dir",
)  # rung, steps: with multi-fidelity promotion, each candidate's highest rung


def candidate_columns(objectives=None) -> tuple[str, ...]:
    """`CANDIDATE_COLUMNS`, with ``latency_ms`` after params when latency is one of `objectives` (None: the active
    ones), as pareto.md and the front Table show it."""
    from falsr.search.objectives import active_objectives

    if "latency" not in (objectives or active_objectives()).names:
        return CANDIDATE_COLUMNS
    at = CANDIDATE_COLUMNS.index("params") + 1
    return (*CANDIDATE_COLUMNS[:at], "latency_ms", *CANDIDATE_COLUMNS[at:])


def candidate_rows(records: Sequence[JournalRecord], objectives=None) -> list[list]:
    """One row per journaled candidate (trained, failed or over a cap), in :func:`candidate_columns` order; with
    latency an objective, each candidate's latency predicted by the table (a journal record holds it only where a
    latency cap decided)."""
    from falsr.search.objectives import active_objectives
    from falsr.space.genome import Genome
    from falsr.training.wandb_utils import candidate_name

    objectives = objectives or active_objectives()
    columns = candidate_columns(objectives)
    rows = []
    for r in records:
        genome = Genome.from_string(r.genome)
        row = {
            **r.to_json(),
            "name": candidate_name(r.generation, r.key),
            "n_cells": genome.n_cells,
            "connections": int(sum(genome.connections)),
            "cells": " ".join(c.name for c in genome.cell_specs),
            "parents": " ".join(r.parents or []),
        }
        if "latency_ms" in columns:
            row["latency_ms"] = objectives.of_record(r)["latency"]
        rows.append([_finite_or_none(row.get(c)) for c in columns])
    return rows


def _finite_or_none(value):
    """NaN/inf (a diverged candidate's PSNR) as a missing value: W&B Tables are JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def hypervolume_history(records: Sequence[JournalRecord], search: DictConfig, last_generation: int) -> list[list]:
    """[generation, hypervolume, front size] after every generation up to `last_generation`, recomputed from
    the journal as the driver computes it (the front of everything journaled by then, each candidate at the
    highest rung it had reached: a promotion counts from the generation it ran in), so a resumed search still
    logs its whole history."""
    from falsr.search.journal import top_records
    from falsr.search.nsga import hypervolume
    from falsr.search.objectives import active_objectives
    from falsr.search.report import pareto_records

    constraints = search_settings(search).constraints
    box = HypervolumeBox(**OmegaConf.to_container(search.get("hypervolume_box") or {}, resolve=True))
    out = []
    for g in range(last_generation + 1):
        by_then = [r for r in records if int(r.generation if r.promoted_in is None else r.promoted_in) <= g]
        front = pareto_records(list(top_records(by_then).values()), constraints)
        out.append([g, hypervolume([active_objectives().record_vector(r) for r in front], box), len(front)])
    return out


def wandb_generation_logger(config: DictConfig, sweep_dir: Path) -> Callable[[dict], None] | None:
    """Per generation, into one W&B run of the search (in the search's own group, like its candidates):
    a Table of ALL candidates from the journal, the hypervolume history (a Table and a line plot), the
    pairwise front plots, and hypervolume / front size / counts against the generation.

    The run is opened and finished around each log (same id, resumed), so it is never open while a
    candidate job (possibly in this very process, with the basic launcher) has its own run.
    """
    logger = (config.get("logger") or {}).get("wandb")
    if logger is None:
        return None
    from falsr.search.journal import JOURNAL_NAME, Journal
    from falsr.training.wandb_utils import search_group

    run_id = "search-" + hashlib.sha1(str(sweep_dir.resolve()).encode()).hexdigest()[:10]
    group = logger.get("group") or search_group(sweep_dir)

    def log_generation(summary: dict) -> None:
        import wandb

        records = list(Journal(sweep_dir / JOURNAL_NAME).latest().values())
        run = wandb.init(
            project=logger.get("project"),
            group=group,
            job_type="search",
            name=f"search-{sweep_dir.name}",
            id=run_id,
            resume="allow",
            dir=str(sweep_dir),
            mode="offline" if logger.get("offline", True) else "online",
            reinit="finish_previous",
            config={
                "search": OmegaConf.to_container(config.search, resolve=True),
                "sweep_dir": str(sweep_dir.resolve()),
            },
        )
        for metric in ("hypervolume", "front_size", "evaluated", "failed"):
            run.define_metric(metric, step_metric="generation")
        history = hypervolume_history(
            Journal(sweep_dir / JOURNAL_NAME).records(), config.search, int(summary["generation"])
        )
        hv_table = wandb.Table(columns=["generation", "hypervolume", "front_size"], data=history)
        extra = ["latency_ms"] if any(r.latency_ms is not None for r in summary["front"]) else []  # search.objectives
        front = wandb.Table(
            columns=["genome", "psnr", "mult_adds", "params", *extra, "generation"],
            data=[
                [r.genome, r.psnr, r.mult_adds, r.params, *[getattr(r, k) for k in extra], r.generation]
                for r in summary["front"]
            ],
        )
        run.log(
            {
                "generation": summary["generation"],
                "hypervolume": summary["hypervolume"],
                "front_size": summary["front_size"],
                "evaluated": summary["evaluated"],
                "failed": summary["failed"],
                "front": front,
                "candidates": wandb.Table(columns=list(candidate_columns()), data=candidate_rows(records)),
                "hypervolume_history": hv_table,
                "hypervolume_plot": wandb.plot.line(
                    hv_table, "generation", "hypervolume", title="hypervolume per generation"
                ),
                **{f"plots/{Path(p).stem}": wandb.Image(p) for p in summary["plots"]},
            }
        )
        run.finish()

    return log_generation


def launch_full_training(
    launcher,
    sweep_dir: Path,
    genomes: Sequence[str],
    arguments: Sequence[str],
    initial_job_idx: int,
    overrides: Sequence[str],
    lr_size: Sequence[int] = DEFAULT_LR_SIZE,
) -> list[dict]:
    """Full training of the chosen models through the same launcher; results in full_training.json."""
    if not genomes:
        log.warning("no model on the front to train fully")
        return []
    batch = [
        list(arguments)
        + candidate_overrides(Offspring(parse_genome(g), "full_train"), None, lr_size=lr_size)
        + list(overrides)
        for g in genomes
    ]
    log.info(f"full training of {len(batch)} models chosen by crowding distance")
    returns = launcher.launch(batch, initial_job_idx=initial_job_idx)
    results = []
    for genome, ret in zip(genomes, returns):
        value, error = job_outcome(ret)
        results.append(
            {
                "genome": genome,
                **(
                    value
                    if isinstance(value, dict)
                    else {
                        "status": "failed",
                        "error": f"{type(error).__name__}: {error}" if error else f"returned {value!r}",
                    }
                ),
            }
        )
    (sweep_dir / "full_training.json").write_text(json.dumps(results, indent=2, default=str))
    return results
