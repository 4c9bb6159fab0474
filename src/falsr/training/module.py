"""LightningModule: an SR network trained with L1 on Y patches, validated with the evaluation protocol."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from falsr.protocol.metrics import ProtocolPSNR, ProtocolSSIM, protocol_y
from falsr.protocol.pipeline import pick_precision, sr_rgb
from falsr.space.cost import default_lr_size, genome_cost
from falsr.space.genome import DEFAULT_SCALE


def constant(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The paper's incomplete training keeps the learning rate constant."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, final_factor: float = 0.0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up then cosine decay to `final_factor` x lr at `total_steps` (short CPU budgets)."""
    total_steps = max(1, int(total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class SRModule(pl.LightningModule):
    """L1 loss on Y; Adam; per-step scheduler; protocol PSNR/SSIM per validation set.

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) taking the parameters / the optimizer.
    Logged: `train/loss`, `val/<Set>/psnr`, `val/<Set>/ssim`, and `val/psnr`, `val/ssim` for the first set
    (checkpoint monitor). The network's forward pass in validation runs in `val_precision` ("fp32", the
    default, whatever the training precision; "bf16": bf16 autocast; "auto": bf16 where it is fast; see
    bench/bf16_validation.py), the
    protocol metrics always in float64/float32 as the protocol fixes them.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        val_names: Sequence[str] = ("Set5",),
        channels_last: bool = True,
        val_precision: str = "fp32",
        cost_lr_size: Sequence[int] | int | None = None,
    ):
        super().__init__()
        self.val_precision = pick_precision(val_precision, "module.val_precision")  # fp32 or bf16
        self.net = net
        if cost_lr_size is None:
            cost_lr_size = default_lr_size(self.scale)
        self.cost_lr_size = cost_lr_size if isinstance(cost_lr_size, int) else tuple(int(v) for v in cost_lr_size)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_names = list(val_names)
        self.channels_last = channels_last
        self.val_psnr = nn.ModuleList([ProtocolPSNR() for _ in self.val_names])
        self.val_ssim = nn.ModuleList([ProtocolSSIM() for _ in self.val_names])
        self.loss_fn = nn.L1Loss()
        self.last_val_step = -1
        self.val_results: dict[str, dict[str, float]] = {}
        if channels_last:
            self.net.to(memory_format=torch.channels_last)

    @property
    def genome(self):
        return getattr(self.net, "genome", None)

    @property
    def scale(self) -> int:
        return getattr(self.net, "scale", DEFAULT_SCALE)

    def cost(self) -> dict[str, int]:
        """Params (counted on the network) and mult-adds for a `cost_lr_size` LR input (default: default_lr_size of
        the scale, 480x480 at x2, the paper's convention; a search job gets the search's settings.lr_size, so its
        journal agrees with the selection)."""
        params = sum(p.numel() for p in self.net.parameters())
        mult_adds = (
            genome_cost(self.genome, self.cost_lr_size, self.scale).mult_adds if self.genome is not None else None
        )
        return {"params": params, "mult_adds": mult_adds}

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(self._in(y))

    def training_step(self, batch, batch_idx):
        lr_y, hr_y = batch
        loss = self.loss_fn(self(lr_y).float(), hr_y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _protocol_sr(self, batch, bf16: bool) -> torch.Tensor:
        """The network's output on a validation batch as the protocol scores it (Y, quantised as an image)."""
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            y_sr = self(batch["y"].float()).float()
        return protocol_y(sr_rgb(y_sr, batch["pbpr"]))

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        sr_y = self._protocol_sr(batch, self.val_precision == "bf16")
        self.val_psnr[dataloader_idx].update(sr_y, batch["hr_y"])
        self.val_ssim[dataloader_idx].update(sr_y, batch["hr_y"])

    def psnr_of(self, batches, bf16: bool) -> float:
        """Protocol PSNR over validation batches, outside Lightning's loop (learning-curve points)."""
        metric = ProtocolPSNR().to(self.device)
        for batch in batches:
            metric.update(self._protocol_sr(batch, bf16), batch["hr_y"])
        return float(metric.compute())

    def on_validation_epoch_end(self) -> None:
        results = {}
        for name, psnr, ssim in zip(self.val_names, self.val_psnr, self.val_ssim):
            if psnr.update_count == 0:
                continue
            results[name] = {"psnr": float(psnr.compute()), "ssim": float(ssim.compute())}
            psnr.reset()
            ssim.reset()
        for name, r in results.items():
            self.log(f"val/{name}/psnr", r["psnr"])
            self.log(f"val/{name}/ssim", r["ssim"])
        if results:
            first = results[next(iter(results))]
            self.log("val/psnr", first["psnr"], prog_bar=True)
            self.log("val/ssim", first["ssim"])
        self.val_results = results
        self.last_val_step = self.global_step

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
