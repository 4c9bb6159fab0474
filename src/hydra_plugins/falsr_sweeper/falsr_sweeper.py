"""The falsr sweeper: generations of the evolutionary loop's proposals, each candidate a job of the configured launcher.

Built like Hydra's Optuna and Nevergrad sweepers: the sweeper only proposes override sets and reads
job returns; Hydra's launcher (basic, joblib, submitit, ray) runs the jobs. The search loop itself
lives in `falsr.search.driver`; the settings and the DEAP toolbox come from the `search` config node
(`+search=nsga2`, `nsga3`, `spea2` or `random`).
"""
# No `from __future__ import annotations`: Hydra execs plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations.

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

import falsr.search.settings  # noqa: F401 - registers the search schema (schema/search) in the ConfigStore

log = logging.getLogger(__name__)


@dataclass
class FalsrSweeperConf:
    _target_: str = "hydra_plugins.falsr_sweeper.falsr_sweeper.FalsrSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="falsr", node=FalsrSweeperConf, provider="falsr")


class FalsrSweeper(Sweeper):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None
        self.lock: int | None = None  # the fd of the sweep folder's lock while a sweep runs

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from falsr.cli import exit_on_user_error

        with exit_on_user_error():
            self._setup(hydra_context, task_function, config)

    def _setup(self, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from falsr.errors import UserError, quiet_disk_full_logging

        quiet_disk_full_logging()  # a full disk stops the search in one line, without logging's tracebacks

        if "search" not in config or not config.hydra.runtime.choices.get("search"):
            raise UserError("no search settings: run `python search.py +search=nsga2`")
        from falsr.cli import use_space_of

        use_space_of(config)  # the operators, the controller and the journal read genomes in the search's space
        self.config, self.hydra_context = config, hydra_context
        resume = config.search.get("resume")
        if resume:
            sweep_dir = Path(str(resume)).resolve()
            if not sweep_dir.is_dir():
                raise UserError(f"search.resume={resume}: no such sweep folder")
            with open_dict(config):
                config.hydra.sweep.dir = str(sweep_dir)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from falsr.cli import exit_on_user_error

        with exit_on_user_error():
            try:
                return self._sweep(arguments)
            except Exception as err:  # a full disk becomes one line naming the folder; any other error goes on
                from falsr.errors import disk_full, disk_full_error

                if (full := disk_full(err)) is None:
                    raise
                raise disk_full_error(self.config.hydra.sweep.dir, full) from None
            finally:
                if self.lock is not None:  # the sweep folder's lock (falsr.search.lock)
                    os.close(self.lock)
                    self.lock = None

    def _check_job(self, arguments: List[str]) -> Tuple[List[str], DictConfig]:
        """The data a candidate job will read, checked once (headers only) before any job is launched, its optimizer
        and scheduler (tried on a probe), and with multi-fidelity promotion the overrides every job gets
        (falsr.search.fidelity.job_overrides, which checks the rungs against the budget); returns those overrides
        and the config of a candidate job (less its genome)."""
        from hydra.utils import instantiate

        from falsr.search.fidelity import job_overrides
        from falsr.search.hydra_glue import fidelity_settings
        from falsr.training.train import optimizer_and_scheduler

        assert self.hydra_context is not None and self.config is not None
        fidelity = fidelity_settings(self.config.search)
        job = self.hydra_context.config_loader.load_sweep_config(self.config, list(arguments))
        overrides = job_overrides(fidelity, job) if fidelity.enabled else []
        instantiate(job.data).check()
        optimizer_and_scheduler(job)
        return overrides, job

    @staticmethod
    def _write_report_context(sweep_dir: Path, job: DictConfig, arguments: List[str], search: DictConfig) -> None:
        """What the reports' PSNRs are measured on, and bicubic there (falsr.search.report); never fatal."""
        from falsr.search.hydra_glue import fidelity_settings
        from falsr.search.report import write_report_context

        try:
            fidelity = fidelity_settings(search)
            context = write_report_context(sweep_dir, job, arguments, fidelity.rungs if fidelity.enabled else None)
            log.info(
                f"PSNR measured on {context['val_set']} ({context['val_images']}) after {context['steps']} "
                f"steps; bicubic there: {context['bicubic']['psnr']:.2f} dB"
            )
        except Exception as err:  # noqa: BLE001 - the reports then go without the reference
            log.warning(f"no bicubic reference for the reports: {type(err).__name__}: {err}")

    @staticmethod
    def _fail_if_nothing_trained(sweep_dir: Path, settings=None) -> None:
        """A search in which every trained candidate failed, or no candidate met the constraints, is a failure:
        one line, non-zero exit."""
        from falsr.errors import UserError
        from falsr.search.hydra_glue import infeasible_search_message
        from falsr.search.journal import JOURNAL_NAME, STATUS_FAILED, STATUS_OK, Journal

        records = list(Journal(sweep_dir / JOURNAL_NAME).latest().values())
        failed = [r for r in records if r.status == STATUS_FAILED]
        if failed and not any(r.status == STATUS_OK for r in records):
            raise UserError(
                f"every candidate failed ({len(failed)} of {len(records)}), e.g. {failed[0].error}; "
                f"tracebacks in the run folders' error.log under {sweep_dir}"
            )
        if settings is not None and (message := infeasible_search_message(records, settings)):
            raise UserError(f"{message} (results so far: {sweep_dir})")

    def _sweep(self, arguments: List[str]) -> Any:
        from falsr.errors import UserError
        from falsr.search.driver import SearchDriver
        from falsr.search.hydra_glue import (
            check_constraints_reachable,
            engine_launcher,
            job_overrides,
            launch_each,
            search_config,
            search_settings,
            wandb_generation_logger,
        )
        from falsr.search.lock import acquire as lock_sweep_dir

        assert self.config is not None and self.launcher is not None
        for override in OverridesParser.create().parse_overrides(arguments):
            if override.is_sweep_override():
                raise UserError(f"{override.input_line}: the search chooses the candidates; give single values only")
        search = self.config.search
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        extra = list(arguments)
        if search.get("resume"):
            extra.append(f"hydra.sweep.dir={sweep_dir}")
        settings = search_settings(search)
        data_scale = OmegaConf.select(self.config, "data.scale", default=settings.scale)
        if settings.scale != data_scale:  # the jobs train at data.scale: costs counted at another would mislead
            raise UserError(
                f"search.settings.scale={settings.scale} but data.scale={data_scale}: the candidates "
                f"train at data.scale; set data.scale={settings.scale} (search.settings.scale follows it)"
            )
        from falsr.search.objectives import from_config, set_objectives

        objectives = from_config(search)  # search.objectives: process-wide, like the space (falsr.search.objectives)
        set_objectives(objectives)
        objectives.check_table(needed=settings.constraints.max_latency_ms is not None)  # read, never measured, here
        if not search.get("resume"):  # a resumed search keeps its own settings (the driver warns if they differ)
            check_constraints_reachable(settings, objectives)  # a mult-adds or latency cap no network meets
        fidelity_overrides, job = self._check_job(arguments)
        config = search_config(search)

        def launch(batch, initial_job_idx):
            self.validate_batch_is_legal(batch[:1])  # a config mistake fails here, not in every job
            if engine_launcher(self.launcher):  # SLURM, Ray: a job the engine kills must fail alone
                return launch_each(self.launcher, batch, initial_job_idx)
            return self.launcher.launch(batch, initial_job_idx=initial_job_idx)

        self._write_report_context(sweep_dir, job, list(arguments), search)
        driver = SearchDriver(
            sweep_dir,
            config,
            launch,
            extra_overrides=job_overrides(config, extra),
            fidelity_overrides=fidelity_overrides,
            on_generation=wandb_generation_logger(self.config, sweep_dir),
        )
        toolbox = ", ".join(f"{name}={entry.get('_target_')}" for name, entry in config.toolbox.items())
        log.info(
            f"falsr search: population {settings.population_size}, {config.generations} generations after the "
            f"initial one, {settings.n_cells} cells; sweep dir {sweep_dir}; toolbox: {toolbox}"
        )
        self.lock = lock_sweep_dir(sweep_dir)  # one process per sweep folder, until the sweep ends (or the process)
        summary = driver.run(resume=bool(search.get("resume")))
        self._fail_if_nothing_trained(sweep_dir, settings)
        OmegaConf.save(
            OmegaConf.create({"search": OmegaConf.to_container(search, resolve=True)}), sweep_dir / "search_config.yaml"
        )
        if search.get("full_train"):
            from falsr.search.hydra_glue import launch_full_training

            launch_full_training(
                self.launcher,
                sweep_dir,
                summary["chosen"],
                list(arguments),
                driver.next_job,
                list(search.get("full_train_overrides") or []),
                lr_size=settings.lr_size,
            )
        return summary
