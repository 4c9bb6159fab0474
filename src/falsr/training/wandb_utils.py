"""W&B runs worth comparing: who a run is (group, name), what it is (the genome, decomposed) and how it did.

* group: one per search, ``search-<sweep folder>-<hash of its absolute path>``, so two searches in one
  project never mix (the same for every candidate job and for the search's own run); ``<task_name>``
  outside a search.
* name: a search candidate is ``g<generation>-<key[:8]>``, a full-training job after a search
  ``full-<key[:8]>``; any other run ``<task_name>-<model name>``.
  Either is only filled where ``logger.wandb.group`` / ``logger.wandb.name`` is null (the default).
* config: the genome decomposed into flat keys (``arch/cell3/op``, ``arch/cell3/width``, ...,
  ``arch/connections``, ``arch/mult_adds`` at the search's LR input size), for W&B's parallel
  coordinates and scatter panels.
* summary: status, train seconds, PSNR/SSIM per validation set (``psnr/Set5``, ...).

The tests read the offline ``.wandb`` files back (tests/wandb_reader.py): they check what W&B recorded.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from falsr.space.cost import DEFAULT_LR_SIZE, default_lr_size, genome_cost
from falsr.space.genome import DEFAULT_SCALE, Genome


def search_group(sweep_dir: str | Path) -> str:
    """The W&B group of a search: its sweep folder's name and a hash of its absolute path."""
    path = Path(sweep_dir).resolve()
    return f"search-{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"


def candidate_name(generation: Any, key: str) -> str:
    return f"g{int(generation)}-{str(key)[:8]}"


def _sweep_dir(cfg: DictConfig) -> str | None:
    """The multirun's sweep folder, or None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return None


def fill_run_identity(cfg: DictConfig) -> None:
    """Set ``logger.wandb.group`` and ``.name`` where they are null (see the module docstring).

    A job of a search (a candidate, or a full-training job launched after it: the config has ``search``
    and runs in the search's multirun) goes into the search's group; a candidate is named
    ``g<generation>-<key[:8]>``, a full-training job ``full-<key[:8]>``.
    """
    logger = (cfg.get("logger") or {}).get("wandb")
    if logger is None:
        return
    candidate = cfg.get("candidate")
    sweep_dir = _sweep_dir(cfg)
    in_search = sweep_dir is not None and (candidate is not None or cfg.get("search") is not None)
    with open_dict(cfg):
        if logger.get("offline") and logger.get("mode") is None:
            # Lightning asks for offline through WANDB_MODE, which W&B reads once per process: a process that
            # already used W&B (the search's run, a notebook) would go online and ask for a login.
            logger.mode = "offline"
        if logger.get("group") is None:
            logger.group = search_group(sweep_dir) if in_search else str(cfg.task_name)
        if logger.get("name") is None:
            if candidate is not None and candidate.get("key") is not None:
                logger.name = candidate_name(candidate.get("generation", 0), candidate.key)
            elif in_search and _genome_key(cfg) is not None:
                logger.name = f"full-{_genome_key(cfg)[:8]}"
            else:
                logger.name = f"{cfg.task_name}-{cfg.model.get('name') or 'model'}"


def _genome_key(cfg: DictConfig) -> str | None:
    try:
        from falsr.space.genome import config_genome

        return config_genome(cfg.model).key
    except Exception:  # noqa: BLE001 - a model without a genome: no key to name it by
        return None


def lr_size(cfg: DictConfig) -> tuple[tuple[int, int], str]:
    """The LR input size the job's costs are measured at (``module.cost_lr_size``, which a search job gets from
    the search's ``search.settings.lr_size``), and where it comes from: that setting, the default of the scale
    (falsr.space.cost.default_lr_size), or ``module.cost_lr_size`` set by hand."""
    size = OmegaConf.select(cfg, "module.cost_lr_size", default=None)
    default = tuple(default_lr_size(OmegaConf.select(cfg, "data.scale", default=None) or DEFAULT_SCALE))
    if size is None:
        return default, "default"
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if cfg.get("candidate") is not None:
        return (h, w), "search.settings.lr_size"
    return (h, w), "default" if (h, w) == default else "module.cost_lr_size"


def arch_config(
    genome: Genome | None, size: tuple[int, int] = DEFAULT_LR_SIZE, source: str = "default", scale: int = DEFAULT_SCALE
) -> dict[str, Any]:
    """The genome as flat W&B config keys: per cell op, width, kernel, repeats, residual; connections; costs."""
    if genome is None:
        return {}
    out: dict[str, Any] = {
        "arch/genome": str(genome),
        "arch/key": genome.key,
        "arch/n_cells": genome.n_cells,
        "arch/connections": int(sum(genome.connections)),
    }
    for j, cell in enumerate(genome.cell_specs):
        out.update(
            {
                f"arch/cell{j}/op": cell.op,
                f"arch/cell{j}/width": cell.channels,
                f"arch/cell{j}/kernel": cell.kernel,
                f"arch/cell{j}/repeats": cell.repeats,
                f"arch/cell{j}/residual": cell.has_skip,
            }
        )  # the in-cell add the network actually has
    cost = genome_cost(genome, size, scale)
    out.update(
        {
            "arch/scale": scale,
            "arch/mult_adds": cost.mult_adds,
            "arch/params": cost.params,
            "arch/lr_size": f"{size[0]}x{size[1]}",
            "arch/lr_size_from": source,
        }
    )
    return out


def candidate_config(cfg: DictConfig) -> dict[str, Any]:
    """The search candidate's identity (``cfg.candidate``) as flat config keys; empty outside a search."""
    cand = cfg.get("candidate")
    if cand is None:
        return {}
    out = {
        "candidate/key": cand.get("key"),
        "candidate/generation": cand.get("generation"),
        "candidate/origin": cand.get("origin"),
        "candidate/parents": list(cand.get("parents") or []),
    }
    sweep_dir = _sweep_dir(cfg)
    if sweep_dir:
        out["candidate/sweep_dir"] = str(Path(sweep_dir).resolve())
    return out


def run_summary(metrics: dict) -> dict[str, Any]:
    """What a job's run summary holds: status, train seconds, PSNR/SSIM (first set and per set), costs."""
    out = {
        k: metrics.get(k)
        for k in ("status", "error", "train_seconds", "psnr", "ssim", "params", "mult_adds", "steps", "genome")
    }
    for name, r in (metrics.get("val") or {}).items():
        out[f"psnr/{name}"] = r.get("psnr")
        out[f"ssim/{name}"] = r.get("ssim")
    return {k: v for k, v in out.items() if v is not None}


def summarize_run(metrics: dict) -> None:
    """Write `run_summary(metrics)` into the open W&B run of this job, if any."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is not None:
        run.summary.update(run_summary(metrics))
