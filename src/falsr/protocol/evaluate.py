"""Evaluate a model on benchmark folders with the FALSR release's protocol (Table I).

`python evaluate.py model=falsr_b model.weights=FALSR-B.pb data.benchmarks=[Set5,Set14]`
prints a Table-I-like table and writes results.json into the Hydra run directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from falsr.protocol.benchmarks import ImagePair, benchmark_dir, list_pairs, load_pair
from falsr.space.cost import genome_cost
from falsr.errors import UserError
from falsr.protocol.metrics import psnr_ssim_y
from falsr.protocol.pipeline import pick_device, precision_dtype, upscale_rgb, with_precision

log = logging.getLogger(__name__)


def prefetched(pairs: list[tuple[str, Path, Path | None]]) -> Iterator[ImagePair]:
    """Load each pair in a background thread while the previous one is being evaluated.

    PNG decoding and the MATLAB-bicubic LR of HR-only folders then overlap the network (PIL and torch
    release the GIL); errors surface in order, when their image comes up.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load_pair, *pairs[0]) if pairs else None
        for i in range(len(pairs)):
            pair = pending.result()
            pending = pool.submit(load_pair, *pairs[i + 1]) if i + 1 < len(pairs) else None
            yield pair


def evaluate_dataset(net, data_dir, name: str, tile: int | None = None, progress: bool = True) -> dict:
    """Mean per-image protocol PSNR/SSIM of `net` on one benchmark folder (data_dir/benchmarks/name)."""
    return evaluate_folder(net, benchmark_dir(data_dir, name), tile, progress, desc=name)


def evaluate_folder(net, folder, tile: int | None = None, progress: bool = True, desc: str | None = None) -> dict:
    """Mean per-image protocol PSNR/SSIM of `net` on a folder of benchmark images (either layout)."""
    pairs = list_pairs(Path(folder))
    psnrs, ssims = [], []
    for pair in tqdm(prefetched(pairs), total=len(pairs), desc=desc or Path(folder).name, unit="img",
                     disable=not progress):
        psnr, ssim = psnr_ssim_y(upscale_rgb(net, pair.lr, tile), pair.hr)
        psnrs.append(psnr)
        ssims.append(ssim)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "images": len(pairs)}


def format_table(results: dict) -> str:
    names = list(results["datasets"])
    head = "| model | mult-adds | params | " + " | ".join(names) + " |"
    rule = "| --- " * (3 + len(names)) + "|"
    cells = " | ".join(f"{d['psnr']:.2f}/{d['ssim']:.4f}" for d in results["datasets"].values())
    model = results["model"] + ("" if results.get("precision", "fp32") == "fp32" else f" ({results['precision']})")
    row = f"| {model} | {results['mult_adds'] / 1e9:.1f}G | {results['params'] / 1e3:,.0f}K | {cells} |"
    return "\n".join([head, rule, row])


def run(cfg: DictConfig) -> dict:
    benchmarks = list(cfg.data.benchmarks)
    if not benchmarks:
        raise UserError("no benchmarks to evaluate: set data.benchmarks=[Set5,Set14]")
    for name in benchmarks:  # fail fast, before any model work
        list_pairs(benchmark_dir(cfg.paths.data_dir, name))
    precision = cfg.get("precision", "fp32")
    precision_dtype(precision)  # an unknown precision fails before the weights load
    net = instantiate(cfg.model)
    if not cfg.model.get("weights"):
        log.warning("model.weights is not set: evaluating an untrained network")
    device = pick_device(cfg.device)
    net = with_precision(net.to(device).eval().to(memory_format=torch.channels_last), precision)
    cost = genome_cost(net.genome)
    results = {"model": net.name, "genome": str(net.genome), "weights": cfg.model.get("weights"),
               "precision": precision,
               "params": cost.params, "mult_adds": cost.mult_adds, "datasets": {}}
    for name in benchmarks:
        results["datasets"][name] = evaluate_dataset(net, cfg.paths.data_dir, name, cfg.tile)
    out = Path(HydraConfig.get().runtime.output_dir) / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(format_table(results))
    print(f"results: {out}")
    return results
