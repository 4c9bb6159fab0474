"""From the `search` config node to the driver, and the W&B / full-training ends of a search."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from falsr.errors import UserError
from falsr.search.driver import DriverOptions
from falsr.search.nsga import HypervolumeBox
from falsr.search.settings import SearchSettings
from falsr.search.toolbox import ENTRIES, build_toolbox, paper_toolbox

log = logging.getLogger(__name__)


def search_settings(search: DictConfig) -> SearchSettings:
    data = OmegaConf.to_container(search.settings, resolve=True)
    try:
        return SearchSettings.from_dict(data)
    except (TypeError, ValueError) as err:  # an unknown key, a bad value
        raise UserError(f"bad search.settings: {err}") from None


def toolbox_config(search: DictConfig) -> dict:
    """The ``toolbox`` node as a plain dict (the paper's operators where it is absent), checked by building it."""
    if search.get("toolbox") is None:
        return paper_toolbox()
    config = OmegaConf.to_container(search.toolbox, resolve=True)
    if not isinstance(config, dict):
        raise UserError(f"search.toolbox must be a mapping of {', '.join(ENTRIES)}, got {config!r}")
    build_toolbox(config, search=None)  # a bad entry fails here, in one line, before the search starts
    return config


def driver_options(search: DictConfig, extra_overrides: Sequence[str]) -> DriverOptions:
    box = OmegaConf.to_container(search.get("hypervolume_box") or {}, resolve=True)
    return DriverOptions(generations=int(search.generations), seed=int(search.seed),
                         use_controller=bool(search.use_controller), report_k=int(search.report_k),
                         hypervolume_box=HypervolumeBox(**box), extra_overrides=tuple(extra_overrides),
                         toolbox=toolbox_config(search), inherit=bool(search.get("inherit", False)))


def engine_launcher(launcher) -> bool:
    """Whether the launcher hands jobs to a cluster engine that can kill one of them (SLURM, Ray)."""
    cls = type(launcher)
    return (cls.__module__.startswith("hydra_plugins.hydra_submitit_launcher") and cls.__name__ == "SlurmLauncher") \
        or cls.__module__.startswith("hydra_plugins.hydra_ray_launcher")


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
            return JobReturn(status=JobStatus.FAILED, _return_value=err)

    with ThreadPoolExecutor(max_workers=len(batch)) as pool:
        return list(pool.map(one, range(len(batch))))


def _start_ray(launcher) -> None:
    """ray.init as hydra-ray-launcher does it, but its default object store size only for a new local Ray:
    ray.init refuses any object_store_memory when it connects to a cluster (hydra.launcher.ray.init.address)."""
    from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray
    from omegaconf import open_dict

    init = launcher.ray_cfg.init
    if not init.get("address"):
        with open_dict(init):
            init.setdefault("object_store_memory", 78643200)
    start_ray(init)


def wandb_generation_logger(config: DictConfig, sweep_dir: Path) -> Optional[Callable[[dict], None]]:
    """Per generation: hypervolume, front size and the pairwise front plots into one W&B run of the search.

    The run is opened and finished around each log (same id, resumed), so it is never open while a
    candidate job (possibly in this very process, with the basic launcher) has its own run.
    """
    logger = (config.get("logger") or {}).get("wandb")
    if logger is None:
        return None
    run_id = "search-" + hashlib.sha1(str(sweep_dir.resolve()).encode()).hexdigest()[:10]

    def log_generation(summary: dict) -> None:
        import wandb

        run = wandb.init(project=logger.get("project"), group=logger.get("group"), job_type="search",
                         name=f"search-{sweep_dir.name}", id=run_id, resume="allow", dir=str(sweep_dir),
                         mode="offline" if logger.get("offline", True) else "online", reinit="finish_previous",
                         config={"search": OmegaConf.to_container(config.search, resolve=True)})
        table = wandb.Table(columns=["genome", "psnr", "mult_adds", "params", "generation"],
                            data=[[r["genome"], r["psnr"], r["mult_adds"], r["params"], r["generation"]]
                                  for r in summary["front"]])
        run.log({"generation": summary["generation"], "hypervolume": summary["hypervolume"],
                 "front_size": summary["front_size"], "evaluated": summary["evaluated"],
                 "failed": summary["failed"], "front": table,
                 **{f"plots/{Path(p).stem}": wandb.Image(p) for p in summary["plots"]}})
        run.finish()

    return log_generation


def launch_full_training(launcher, sweep_dir: Path, genomes: Sequence[str], arguments: Sequence[str],
                         initial_job_idx: int, overrides: Sequence[str]) -> list[dict]:
    """Full training of the chosen models through the same launcher; results in full_training.json."""
    if not genomes:
        log.warning("no model on the front to train fully")
        return []
    batch = [list(arguments) + ["model=genome", f"model.genome={g}", *overrides] for g in genomes]
    log.info(f"full training of {len(batch)} models chosen by crowding distance")
    returns = launcher.launch(batch, initial_job_idx=initial_job_idx)
    results = []
    for genome, ret in zip(genomes, returns):
        value = getattr(ret, "_return_value", None)
        results.append({"genome": genome, **(value if isinstance(value, dict) else {"status": "failed",
                                                                                    "error": str(value)})})
    (sweep_dir / "full_training.json").write_text(json.dumps(results, indent=2, default=str))
    return results
