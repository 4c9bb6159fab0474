"""Learning curves: the shape of training, recorded in every job's metrics.json (and the search journal).

Curve-based estimators (the sum of training losses, SoTL; extrapolating validation points; the early points
of a longer run) and multi-fidelity promotion all read how a network trains, not only where it ends.
`LearningCurve` records, compactly:

* ``loss``: the mean training loss of every window of ``loss_every`` steps (``steps`` = the window's last step);
* ``val``: the PSNR on one validation set (``val_set``, default the held-out training images) at each of
  ``val_steps`` that the run reaches, and at its last step, its network run in bf16 where bf16 is fast
  (``val_precision``), as the search's validation does.

Observing never changes training: the evaluation runs in eval mode under ``torch.no_grad`` inside
``torch.random.fork_rng``, so the random state the training goes on with is the one it would have had (the
same seed trains the same weights bit for bit with or without curve points; tests/test_curves.py checks it).
That is why bench/_runs.py leaves ``callbacks.learning_curve.*`` out of its run keys.

A run continued from a Lightning checkpoint (``ckpt_path``: a promotion to the next rung of a multi-fidelity
search) continues the curve: the points so far and the open loss window travel in the checkpoint (the callback's
``state_dict``), so its loss points are those of one longer run, and the continued run validates once at the step
it starts from (the checkpoint was written before the earlier run's
last point), so the search extrapolates a promoted candidate from its whole curve, not from the steps of its
last rung alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import move_data_to_device

from falsr.errors import UserError
from falsr.protocol.pipeline import pick_precision


class LearningCurve(pl.Callback):
    """Window-mean training loss every `loss_every` steps and `val_set` PSNR at `val_steps` (and the last step)."""

    def __init__(
        self,
        loss_every: int = 10,
        val_steps: Sequence[int] = (100, 300, 1000, 2000),
        val_set: str | None = "holdout",
        val_precision: str = "auto",
    ):
        if int(loss_every) < 1:
            raise UserError(f"callbacks.learning_curve.loss_every={loss_every}: must be a positive number of steps")
        steps = [int(s) for s in (val_steps or [])]
        if any(s < 1 for s in steps) or steps != sorted(set(steps)):
            raise UserError(f"callbacks.learning_curve.val_steps={list(val_steps)}: must be increasing positive steps")
        self.loss_every, self.val_steps, self.val_set = int(loss_every), steps, val_set
        self.val_precision = pick_precision(val_precision, "callbacks.learning_curve.val_precision")  # fp32 or bf16
        self.reset()

    def reset(self) -> None:
        self.loss_steps: list[int] = []
        self.loss_values: list[float] = []
        self.val_at: list[int] = []
        self.val_psnr: list[float] = []
        self.seconds = 0.0
        self._window: torch.Tensor | None = None
        self._count = 0
        self._set_index = 0
        self._set_name: str | None = None

    # -- Lightning hooks ---------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        names = list(getattr(pl_module, "val_names", []) or [])
        if self.val_set is None or not names:
            self._set_name = names[0] if names else None
        elif self.val_set in names:
            self._set_name = self.val_set
        else:  # e.g. data.val_sets=[Set5]: curves on the set that is validated (said in the record)
            self._set_name = names[0]
        self._set_index = names.index(self._set_name) if self._set_name in names else 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step > 0 and step not in self.val_at:  # continued from a checkpoint: the point it continues from
            self._validate(trainer, pl_module, step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach().float()
        self._window = loss if self._window is None else self._window + loss  # no host sync per step on a GPU
        self._count += 1
        step = trainer.global_step
        if step % self.loss_every == 0:
            self._flush(step)
        if step in self.val_steps and step < (trainer.max_steps if trainer.max_steps > 0 else float("inf")):
            self._validate(trainer, pl_module, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        self._flush(step)
        if step > 0 and (not self.val_at or self.val_at[-1] != step):
            self._validate(trainer, pl_module, step)

    # -- checkpoints (Lightning's callback state) -----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_every": self.loss_every,
            "loss_steps": list(self.loss_steps),
            "loss_values": list(self.loss_values),
            "val_at": list(self.val_at),
            "val_psnr": list(self.val_psnr),
            "seconds": self.seconds,
            # the loss window still open: the continued run goes on filling it, as one longer run would
            "window_sum": None if self._window is None else float(self._window),
            "window_count": self._count,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if int(state_dict.get("loss_every", self.loss_every)) != self.loss_every:
            raise UserError(
                f"callbacks.learning_curve.loss_every={self.loss_every}: the checkpoint's curve has a loss point every "
                f"{state_dict['loss_every']} steps; continue with that value"
            )
        self.loss_steps = [int(s) for s in state_dict.get("loss_steps", [])]
        self.loss_values = [float(v) for v in state_dict.get("loss_values", [])]
        self.val_at = [int(s) for s in state_dict.get("val_at", [])]
        self.val_psnr = [float(v) for v in state_dict.get("val_psnr", [])]
        self.seconds = float(state_dict.get("seconds", 0.0))
        if state_dict.get("window_sum") is not None:
            self._window = torch.tensor(float(state_dict["window_sum"]))
            self._count = int(state_dict.get("window_count", 0))

    # -- recording ---------------------------------------------------------------------------------
    def _flush(self, step: int) -> None:
        if self._count:
            self.loss_steps.append(int(step))
            self.loss_values.append(round(float(self._window) / self._count, 6))
        self._window, self._count = None, 0

    def _validate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """PSNR of the current weights on the curve's set, leaving training's random state untouched."""
        if self._set_name is None or trainer.datamodule is None:
            return
        start = time.perf_counter()
        loaders = trainer.datamodule.val_dataloader()
        loader = loaders[self._set_index] if isinstance(loaders, (list, tuple)) else loaders
        bf16 = self._bf16()
        device = pl_module.device
        devices = [device] if device.type == "cuda" else []
        was_training = pl_module.training
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            pl_module.eval()
            try:
                psnr = pl_module.psnr_of((move_data_to_device(b, device) for b in loader), bf16=bf16)
            finally:
                pl_module.train(was_training)
        self.val_at.append(int(step))
        self.val_psnr.append(round(psnr, 4))
        self.seconds += time.perf_counter() - start
        for logger in trainer.loggers:
            logger.log_metrics({f"curve/{self._set_name}/psnr": psnr}, step=step)

    def _bf16(self) -> bool:
        return self.val_precision == "bf16"

    def record(self) -> dict:
        """The curve as metrics.json keeps it (compact lists; steps are optimizer steps)."""
        return {
            "loss": {"every": self.loss_every, "steps": self.loss_steps, "values": self.loss_values},
            "val": {
                "set": self._set_name,
                "precision": self.val_precision,
                "steps": self.val_at,
                "psnr": self.val_psnr,
            },
            "seconds": round(self.seconds, 3),
        }


def find(trainer: pl.Trainer) -> LearningCurve | None:
    return next((c for c in trainer.callbacks if isinstance(c, LearningCurve)), None)


# -- reading a curve: estimators of where training goes (a score per run: higher is better) ----------------


def sotl(curve: dict, last_fraction: float = 1.0) -> float | None:
    """Minus the sum of the training-loss windows over the last `last_fraction` of the run (1.0: SoTL, the whole
    run; 1/3: SoTL-E, its last third). Lower training loss ranks higher."""
    steps, values = (curve or {}).get("loss", {}).get("steps"), (curve or {}).get("loss", {}).get("values")
    if not steps:
        return None
    start = steps[-1] * (1.0 - last_fraction)
    kept = [v for s, v in zip(steps, values) if s > start]
    return -float(np.sum(kept)) if kept else None


def val_at(curve: dict, step: int) -> float | None:
    """The curve's validation PSNR at exactly `step` (None when the run did not record it)."""
    val = (curve or {}).get("val") or {}
    for s, v in zip(val.get("steps", []), val.get("psnr", [])):
        if s == step:
            return float(v)
    return None


def power_law(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """PSNR(t) = a - b * t^-c: a saturating learning curve (Domhan et al. 2015 use such families)."""
    return a - b * np.power(t, -c)


def extrapolate(curve: dict, to_step: int, min_points: int = 4) -> float | None:
    """The validation PSNR at `to_step` predicted by a least-squares power law through the curve's points
    (scipy.optimize.curve_fit); the last point itself when the fit fails or runs away (beyond +3 dB)."""
    from scipy.optimize import curve_fit

    val = (curve or {}).get("val") or {}
    t, y = np.asarray(val.get("steps", []), float), np.asarray(val.get("psnr", []), float)
    if len(t) < min_points:
        return None
    try:
        params, _ = curve_fit(
            power_law, t, y, p0=(y[-1] + 1.0, 10.0, 0.5), bounds=([0, 0, 0.01], [80, 1e4, 3]), maxfev=5000
        )
        pred = float(power_law(np.asarray([to_step], float), *params)[0])
    except (RuntimeError, ValueError):
        return float(y[-1])
    return pred if math.isfinite(pred) and pred <= y[-1] + 3.0 else float(y[-1])
