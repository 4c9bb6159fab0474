"""The training task behind `train.py`: build data, network, module, trainer from the config; fit; report.

`task_wrapper` (after the lightning-hydra-template) makes every job end with a `metrics.json` in its run
directory, `status` "ok" or "failed" with the `error`, and its W&B run finished (failed on a crash),
so a Hydra multirun (the search) can treat a crashed or diverged candidate as a failed one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf, open_dict

from falsr.errors import UserError, disk_full
from falsr.protocol.pipeline import PRECISIONS, pick_precision
from falsr.space.genome import set_space, space_from_config
from falsr.training.curves import find as find_curve
from falsr.training.wandb_utils import arch_config, candidate_config, fill_run_identity, lr_size, summarize_run

# Lightning 2.6 on torch 2.13 warns at every fit about its own use of a torch API; not ours to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Lightning warns on every Trainer where a SLURM client is installed but the run is not a SLURM job (a machine with
# the SLURM tools, the search on the basic launcher): noise that breaks the one-line errors; SLURM jobs still run as such.
warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system but is not used")

# trainer.precision takes the project's words (falsr.protocol.pipeline.PRECISIONS: fp32, bf16, auto), which become
# these Lightning values, and Lightning's own values as they are.
LIGHTNING = {"fp32": "32-true", "bf16": "bf16-mixed"}
LIGHTNING_PRECISIONS = (
    "32",
    "32-true",
    "bf16-mixed",
    "bf16-true",
    "16-mixed",
    "16-true",
    "64",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
)


def resolve_precision(precision: Any) -> str:
    """The Lightning value of a `trainer.precision` setting (auto resolved); one line on a typo."""
    value = str(precision)
    if value in LIGHTNING_PRECISIONS:
        return value
    if value not in PRECISIONS:
        raise UserError(
            f"unknown trainer.precision {value!r}: choose one of {', '.join(PRECISIONS)} "
            f"(or a Lightning value: {', '.join(LIGHTNING_PRECISIONS)})"
        )
    return LIGHTNING[pick_precision(value, "trainer.precision")]


def job_devices(devices: Any, accelerator: Any, job_num: int | None) -> Any:
    """One GPU per parallel multirun job: job k of a sweep takes GPU k mod (number of GPUs).

    No Hydra launcher assigns devices, so on a multi-GPU machine parallel search jobs would all land
    on GPU 0. Only when the config leaves the choice open (devices 1/auto, accelerator auto/gpu/cuda)
    and CUDA_VISIBLE_DEVICES is not set by the user or a scheduler (SLURM sets it per job).
    """
    if job_num is None or str(devices) not in ("1", "auto") or str(accelerator) not in ("auto", "gpu", "cuda"):
        return devices
    if "CUDA_VISIBLE_DEVICES" in os.environ or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return devices
    return [job_num % torch.cuda.device_count()]


def run_dir(cfg: DictConfig) -> Path:
    """The job's output folder: Hydra's run (or multirun job) folder, else paths.output_dir."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def _finish_wandb(exit_code: int) -> None:
    """End the W&B run of this job (failed when exit_code != 0) so the next job never logs into it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def task_wrapper(task):
    """Run a task; always write metrics.json and finish W&B; on failure record status/error.

    A failure is re-raised (user errors become one line via falsr.errors.exit_on_user_error) unless
    `ignore_errors=true`, when the failed metrics are returned so a multirun goes on.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> dict:
        start = time.perf_counter()
        out = run_dir(cfg)
        out.mkdir(parents=True, exist_ok=True)
        _finish_wandb(0)  # a run left open by an earlier job in this process is not ours to log into
        try:
            metrics = task(cfg)
        except BaseException as exc:  # recorded, then re-raised unless ignore_errors
            metrics = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "psnr": None,
                "ssim": None,
                "genome": _genome_str(cfg),
                "train_seconds": round(time.perf_counter() - start, 3),
            }
            _write(out / "metrics.json", metrics)
            summarize_run(metrics)
            _finish_wandb(1)
            # Stopped from outside (Ctrl-C; SIGTERM, which Ray turns into SystemExit when the search owning the
            # task dies): not the candidate's failure, so nothing to journal; a resumed search trains it.
            # A full disk is no failure of the candidate either: the search stops on it, and a resume trains it.
            if (
                isinstance(exc, (KeyboardInterrupt, SystemExit))
                or disk_full(exc) is not None
                or not cfg.get("ignore_errors", False)
            ):
                raise
            (out / "error.log").write_text(traceback.format_exc())  # the console keeps one line per candidate
            print(
                f"job failed (ignore_errors=true): {metrics['error']} (traceback: {out / 'error.log'})", file=sys.stderr
            )
            return metrics
        _write(out / "metrics.json", metrics)
        summarize_run(metrics)
        _finish_wandb(0)
        return metrics

    return wrapper


class JobTimeout(pl.Callback):
    """``job_timeout_s``: the job raises TimeoutError("timed out after N s") once its wall time (counted from the
    task's start) passes the limit; the job's own failure path (:func:`task_wrapper`, with ``ignore_errors`` in a
    search) then records it failed with that reason.

    Checked at every training and validation batch, and, where the job runs in its process's main thread (the
    basic, joblib, submitit and Ray launchers run it there), by a SIGALRM timer armed while Lightning runs: a job
    that hangs inside a step (Python code waiting) is ended too. A hang inside one C call ends when the call
    returns; the launcher's own limit (hydra.launcher.timeout_min, SLURM's time) is the backstop for those."""

    def __init__(self, seconds: float, start: float):
        self.seconds, self.deadline = float(seconds), start + float(seconds)
        self._armed, self._previous = False, None

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"timed out after {self.seconds:g} s (job_timeout_s)")

    def on_train_batch_start(self, *args, **kwargs) -> None:
        self.check()

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.check()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self.check()

    # -- the timer, armed from setup to teardown (or the exception that ends the run) --------------------------
    def setup(self, trainer, pl_module, stage) -> None:
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return
        self._previous = signal.signal(signal.SIGALRM, self._alarm)
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, max(self.deadline - time.monotonic(), 1e-3))

    def teardown(self, trainer, pl_module, stage) -> None:
        self._disarm()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._disarm()

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)

    def _alarm(self, signum, frame) -> None:
        if self._armed:  # (a late alarm after the run ended is ignored)
            self._disarm()
            raise TimeoutError(f"timed out after {self.seconds:g} s (job_timeout_s)")


# What a target raises for a bad value of its config node (and Hydra, for a target it cannot locate or call).
BAD_VALUE_ERRORS = (
    ValueError,
    TypeError,
    ArithmeticError,
    ImportError,
    InstantiationException,
    MisconfigurationException,
)


def bad_config_value(cfg: DictConfig, key: str, err: BaseException) -> UserError:
    """A one-line UserError for `err`, raised by the object of config node `key` (optimizer, scheduler, trainer):
    ``<key>.<name>=<value>: <the target's own message>``. The value blamed is the node's entry that the message
    quotes, else what the command line set in that node, else the node's target."""
    located = True
    if isinstance(err, InstantiationException):
        if str(err).startswith("Error in call to target") and err.__cause__ is not None:
            err = err.__cause__  # the target's own error, which Hydra wraps
        else:  # Hydra's own: a target it cannot locate
            located = False
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(", set env var HYDRA_FULL_ERROR")[0]
    if not located:
        from falsr import CONF_DIR

        if (CONF_DIR / key).is_dir():
            reason += f" (the configs of {key}=: {', '.join(sorted(p.stem for p in (CONF_DIR / key).glob('*.yaml')))})"
    node = cfg.get(key)
    try:
        entries = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else {}
    except Exception:  # noqa: BLE001 - a node that does not resolve: blame what the command line set
        entries = {}
    entries = {str(name): value for name, value in entries.items() if not str(name).startswith("_")}
    task = [o.lstrip("+~") for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []
    overridden = {}  # the node's entries the command line set (the last override of one wins), and how
    for o in task:
        if o.startswith(f"{key}."):
            overridden[o.partition("=")[0][len(key) + 1 :].split(".")[0]] = o
    quoted = [name for name in entries if f"'{name}'" in reason]  # e.g. "unexpected keyword argument 'foo'"
    quoted = quoted or [name for name, value in entries.items() if _quotes(reason, value)]
    quoted = [name for name in quoted if name in overridden] or quoted
    if len(quoted) == 1:
        blamed = f"{key}.{quoted[0]}={_override_text(entries[quoted[0]])}"
    else:
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        blamed = (
            " ".join(overridden.values())
            or " ".join(o for o in task if o.startswith(f"{key}="))
            or (f"{key} ({target})" if target else key)
        )
    return UserError(f"{blamed}: {reason}")


def _quotes(message: str, value: Any) -> bool:
    """Whether `message` quotes `value` (or, for a list, one of its items) as a whole token."""
    import re

    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, (dict, list)) or v is None:
            continue
        forms = {str(v)} | ({repr(float(v))} if isinstance(v, (int, float)) and not isinstance(v, bool) else set())
        if any(re.search(rf"(?<![\w.+-]){re.escape(f)}(?![\w]|\.\d)", message) for f in forms):
            return True
    return False


def _override_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def checked(cfg: DictConfig, key: str, build):
    """``build()`` (instantiating, or trying, the object of config node `key`), a bad value a one-line UserError."""
    try:
        return build()
    except BAD_VALUE_ERRORS as err:
        raise bad_config_value(cfg, key, err) from err


def optimizer_and_scheduler(cfg: DictConfig):
    """The optimizer and scheduler partials of the config, tried once on a probe parameter (one step), so that a bad
    value (``optimizer.lr=-1``, ``scheduler.step_size=0``) is a one-line error naming it now, not a traceback from
    inside the training loop."""
    optimizer = checked(cfg, "optimizer", lambda: instantiate(cfg.optimizer))
    scheduler = checked(cfg, "scheduler", lambda: instantiate(cfg.scheduler)) if cfg.get("scheduler") else None
    probe = torch.nn.Parameter(torch.zeros(1))
    probe_optimizer = checked(cfg, "optimizer", lambda: optimizer([probe]))
    if scheduler is not None:
        probe_scheduler = checked(cfg, "scheduler", lambda: scheduler(probe_optimizer))

        def one_step():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "scheduler.step() before optimizer.step()": a probe
                probe.grad = torch.zeros(1)
                probe_optimizer.step()
                try:
                    probe_scheduler.step()
                except TypeError:  # a step that needs arguments (a metric): not ours to guess
                    pass

        checked(cfg, "scheduler", one_step)
    return optimizer, scheduler


def _genome_str(cfg: DictConfig) -> str | None:
    try:
        from falsr.space.genome import config_genome

        return str(config_genome(cfg.model))
    except Exception:  # noqa: BLE001 - only a label in a failure report
        return None


def _write(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=2) + "\n")


@task_wrapper
def train(cfg: DictConfig) -> dict:
    """Fit (or, with trainer.max_steps=0, only validate) and return the metrics of metrics.json."""
    task_start = time.monotonic()
    out = run_dir(cfg)
    set_space(space_from_config(cfg.get("space")))  # before any genome is read (also without the entry point)
    with open_dict(cfg):
        if cfg.get("seed") is None:
            cfg.seed = random.randrange(2**31)
        cfg.trainer.precision = resolve_precision(cfg.trainer.get("precision", "auto"))
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            cfg.trainer.devices = job_devices(
                cfg.trainer.get("devices", 1), cfg.trainer.get("accelerator", "auto"), HydraConfig.get().job.num
            )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    datamodule.setup("validate" if cfg.trainer.get("max_steps") == 0 else "fit")  # bad data fails here, early
    net = instantiate(cfg.model)
    if getattr(net, "scale", datamodule.scale) != datamodule.scale:
        raise UserError(
            f"model.scale={net.scale} but data.scale={datamodule.scale}: the network must upscale by the "
            f"data's factor; set data.scale={net.scale} (model.scale follows it by default)"
        )
    optimizer, scheduler = optimizer_and_scheduler(cfg)
    module = instantiate(cfg.module, net=net, optimizer=optimizer, scheduler=scheduler, val_names=datamodule.val_names)
    cost = module.cost()
    genome = str(module.genome) if module.genome is not None else None

    fill_run_identity(cfg)  # W&B group (one per search) and name (g<generation>-<key>) where left null
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and "_target_" not in node:  # a key set on a callback the config no longer has
            raise UserError(
                f"callbacks.{name} sets {', '.join(node)} but has no _target_: the callbacks group chosen "
                f"(e.g. callbacks=none) leaves it out; choose callbacks=default or set callbacks.{name}=null"
            )
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not loggers:  # nothing to monitor the learning rate into
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    if cfg.get("job_timeout_s") is not None:
        if not float(cfg.job_timeout_s) > 0:
            raise UserError(f"job_timeout_s={cfg.job_timeout_s}: use a number of seconds > 0, or null for no limit")
        callbacks.append(JobTimeout(cfg.job_timeout_s, task_start))
    trainer: pl.Trainer = checked(
        cfg, "trainer", lambda: instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    )
    hparams = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "genome": genome,
        **cost,
        **arch_config(module.genome, *lr_size(cfg), scale=module.scale),
        **candidate_config(cfg),
    }
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)
        logger.log_metrics({"cost/params": cost["params"], "cost/mult_adds": cost["mult_adds"] or 0}, step=0)
    print(
        f"model {getattr(net, 'name', type(net).__name__)}: {cost['params']:,} params, "
        f"{(cost['mult_adds'] or 0) / 1e9:.1f}G mult-adds; precision {cfg.trainer.precision}; run dir {out}",
        flush=True,
    )
    if getattr(net, "inheritance", None) is not None:
        inh = net.inheritance
        print(
            f"inherited {inh.fraction:.1%} of the parameters ({', '.join(sorted(inh.units))}) from "
            f"{len(inh.used_sources)} of {len(inh.sources)} parent(s)",
            flush=True,
        )

    start = time.perf_counter()
    if cfg.trainer.get("max_steps") == 0:
        trainer.validate(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), verbose=False)
    else:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if trainer.interrupted:
            raise KeyboardInterrupt("training interrupted")
        if module.last_val_step != trainer.global_step:  # report the final weights, not an older validation
            trainer.validate(module, datamodule=datamodule, verbose=False)
    train_seconds = time.perf_counter() - start

    results = module.val_results
    first = results[next(iter(results))] if results else {"psnr": None, "ssim": None}
    if first["psnr"] is not None and not math.isfinite(first["psnr"]):
        raise FloatingPointError(f"validation PSNR is {first['psnr']}")
    ckpt = next((c for c in trainer.callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)), None)
    inheritance = getattr(net, "inheritance", None)
    inherited_steps = inheritance.inherited_steps if inheritance is not None else 0
    weights = None
    if cfg.get("save_weights", False):  # the final weights (those validated), e.g. for a search child to inherit
        from falsr.weights import save_weights

        weights = str(save_weights(net, out / "weights.pt", lineage_steps=trainer.global_step + inherited_steps))
    metrics = {
        "status": "ok",
        "error": None,
        "psnr": first["psnr"],
        "ssim": first["ssim"],
        "val": results,
        "params": cost["params"],
        "mult_adds": cost["mult_adds"],
        "genome": genome,
        "scale": datamodule.scale,
        "model": getattr(net, "name", None),
        "train_seconds": round(train_seconds, 3),
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "seed": cfg.seed,
        "precision": cfg.trainer.precision,
        "device": str(trainer.strategy.root_device),
        "best_psnr": float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None,
        "best_ckpt": ckpt.best_model_path or None if ckpt is not None else None,
        "last_ckpt": ckpt.last_model_path or None if ckpt is not None else None,
        "weights": weights,
        "inherited_fraction": inheritance.fraction if inheritance is not None else 0.0,
        "inherited_from": inheritance.used_sources if inheritance is not None else [],
        "inherited_steps": inherited_steps,
        "curve": curve.record()
        if (curve := find_curve(trainer)) is not None and cfg.trainer.get("max_steps")
        else None,
    }
    print(
        f"{metrics['steps']} steps in {train_seconds:.1f} s: "
        + ", ".join(f"{name} {r['psnr']:.3f} dB / {r['ssim']:.4f}" for name, r in results.items()),
        flush=True,
    )
    return metrics
