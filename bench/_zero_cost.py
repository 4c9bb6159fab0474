"""Zero-cost scores of a genome at initialisation, on real training patches (bench/proxy_fidelity.py).

No maintained library computes them for an arbitrary PyTorch model without pulling in its own search spaces
(the authors' code, e.g. SamsungLabs/zero-cost-nas, is a research repository, not a package), so the two
used here are written out; each is a few lines of its paper's definition:

* synflow (Tanaka et al. 2020; Abdelfattah et al. 2021 as a NAS proxy): with every weight replaced by its
  absolute value, the sum over parameters of |theta * dR/dtheta| for R = sum of the output on an all-ones
  input, in float64 (no data, no labels);
* grad_norm (Abdelfattah et al. 2021): the sum over parameters of the L2 norm of the gradient of the training
  loss (L1, as the search trains) on one real batch of patches.

The network is initialised as the search's proxy initialises it (PyTorch's default init, model.init_std=null)
from torch.manual_seed(seed), so a seed means what it means for the trained proxies.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn


def _net(genome: str, seed: int) -> nn.Module:
    from falsr.space.network import build_network

    torch.manual_seed(seed)
    return build_network(genome, init_std=None)


def synflow(genome: str, seed: int, lr_side: int = 32) -> float:
    """log of the synflow sum (it spans hundreds of orders of magnitude across networks)."""
    net = _net(genome, seed).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones(1, 1, lr_side, lr_side, dtype=torch.float64)).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def grad_norm(genome: str, seed: int, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    net = _net(genome, seed)
    lr, hr = batch
    nn.functional.l1_loss(net(lr), hr).backward()
    return float(sum(p.grad.norm() for p in net.parameters() if p.grad is not None))


def training_batch(data_dir: str, seed: int, batch_size: int = 16, patch_size: int = 64, holdout: int = 8):
    """One batch of (LR, HR) Y patches of the training images as the proxy draws them (its seed, its holdout)."""
    from falsr.training.data import SRDataModule

    dm = SRDataModule(
        train_dir=f"{data_dir}/train/T91",
        val_sets=[],
        batch_size=batch_size,
        patch_size=patch_size,
        samples_per_epoch=batch_size,
        seed=seed,
        holdout=holdout,
    )
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def scores(genome: str, seed: int, batch) -> dict:
    """{"synflow", "grad_norm", "seconds"} of one genome and seed (seconds: CPU time of both)."""
    start = time.process_time()
    out = {"synflow": synflow(genome, seed), "grad_norm": grad_norm(genome, seed, batch)}
    out["seconds"] = round(time.process_time() - start, 3)
    return out
