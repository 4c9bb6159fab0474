"""Evaluate a model on benchmark folders with the FALSR release's protocol (Table I).

`python evaluate.py model=falsr_b model.weights=FALSR-B.pb data.benchmarks=[Set5,Set14]`
prints a Table-I-like table and writes results.json into the Hydra run directory.
`python evaluate.py model=bicubic data.scale=3 'data.benchmarks=[Set5,Set14]'`: the bicubic row at x2, x3 or x4.

Protocols (``protocol=``, falsr.protocol.metrics): ``falsr`` is the FALSR release's (Table I), ``matlab`` the
MATLAB scripts' behind the published bicubic rows; they differ only on single-channel HR images (Set14's bridge).
``protocol=null`` (the default) picks ``falsr`` for networks at x2, so Table I does not move, and ``matlab``
otherwise (the bicubic baseline at every scale, and the convention of the published x3/x4 rows).
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

from falsr.errors import UserError
from falsr.protocol.benchmarks import ImagePair, benchmark_dir, list_pairs, load_pair
from falsr.protocol.bicubic import Bicubic
from falsr.protocol.metrics import PROTOCOLS, protocol_border, psnr_ssim_y
from falsr.protocol.pipeline import net_scale, pick_device, pick_precision, upscale_rgb, with_precision
from falsr.space.cost import default_lr_size, genome_cost
from falsr.space.genome import check_scale

log = logging.getLogger(__name__)


def prefetched(pairs: list[tuple[str, Path, Path | None]], scale: int = 2) -> Iterator[ImagePair]:
    """Load each pair in a background thread while the previous one is being evaluated.

    PNG decoding and the MATLAB-bicubic LR of HR-only folders then overlap the network (PIL and torch
    release the GIL); errors surface in order, when their image comes up.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load_pair, *pairs[0], scale) if pairs else None
        for i in range(len(pairs)):
            pair = pending.result()
            pending = pool.submit(load_pair, *pairs[i + 1], scale) if i + 1 < len(pairs) else None
            yield pair


def evaluate_dataset(
    net,
    data_dir,
    name: str,
    tile: int | None = None,
    progress: bool = True,
    scale: int = 2,
    protocol: str | None = None,
) -> dict:
    """Mean per-image protocol PSNR/SSIM of `net` on one benchmark folder (data_dir/benchmarks/name)."""
    return evaluate_folder(
        net, benchmark_dir(data_dir, name), tile, progress, desc=name, scale=scale, protocol=protocol
    )


def resolve_protocol(protocol: str | None, net, scale: int) -> str:
    """`protocol=`, or where null: falsr for networks at x2 (Table I), matlab otherwise (published rows)."""
    if protocol is None:
        return "falsr" if scale == 2 and not isinstance(net, Bicubic) else "matlab"
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}, or null for the default")
    return protocol


def upscaler(net, scale: int, tile: int | None = None):
    """LR RGB uint8 -> SR RGB uint8 at `scale` for a network or the bicubic baseline; one-line error on a mismatch."""
    scale = check_scale(scale)
    if isinstance(net, Bicubic):
        return lambda lr: net.upscale(lr, scale)
    if scale != net_scale(net):
        raise UserError(
            f"{getattr(net, 'name', 'the model')} is a x{net_scale(net)} network and cannot be evaluated "
            f"at data.scale={scale}: set data.scale={net_scale(net)}, or use model=bicubic at x{scale}"
        )
    return lambda lr: upscale_rgb(net, lr, tile)


def evaluate_folder(
    net,
    folder,
    tile: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    scale: int = 2,
    protocol: str | None = None,
) -> dict:
    """Mean per-image protocol PSNR/SSIM of `net` on a folder of benchmark images (either layout) at `scale`."""
    upscale = upscaler(net, scale, tile)
    matlab = resolve_protocol(protocol, net, scale) == "matlab"
    border = protocol_border(scale)
    pairs = list_pairs(Path(folder), scale)
    psnrs, ssims = [], []
    for pair in tqdm(
        prefetched(pairs, scale), total=len(pairs), desc=desc or Path(folder).name, unit="img", disable=not progress
    ):
        psnr, ssim = psnr_ssim_y(upscale(pair.lr), pair.hr, border, grey=matlab and pair.grey)
        psnrs.append(psnr)
        ssims.append(ssim)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "images": len(pairs)}


def format_table(results: dict) -> str:
    names = list(results["datasets"])
    head = "| model | mult-adds | params | " + " | ".join(names) + " |"
    rule = "| --- " * (3 + len(names)) + "|"
    cells = " | ".join(f"{d['psnr']:.2f}/{d['ssim']:.4f}" for d in results["datasets"].values())
    notes = [f"x{results['scale']}"] if results.get("scale", 2) != 2 else []
    notes += [] if results.get("precision", "fp32") == "fp32" else [results["precision"]]
    model = results["model"] + (f" ({', '.join(notes)})" if notes else "")
    mult_adds = "-" if results["mult_adds"] is None else f"{results['mult_adds'] / 1e9:.1f}G"
    params = "-" if results["params"] is None else f"{results['params'] / 1e3:,.0f}K"
    row = f"| {model} | {mult_adds} | {params} | {cells} |"
    return "\n".join([head, rule, row])


def run(cfg: DictConfig) -> dict:
    scale = check_scale(cfg.data.get("scale", 2))
    benchmarks = list(cfg.data.benchmarks)
    if not benchmarks:
        raise UserError("no benchmarks to evaluate: set data.benchmarks=[Set5,Set14]")
    for name in benchmarks:  # fail fast, before any model work
        list_pairs(benchmark_dir(cfg.paths.data_dir, name), scale)
    precision = pick_precision(cfg.get("precision", "fp32"))  # an unknown one fails before the weights load
    net = instantiate(cfg.model)
    protocol = resolve_protocol(cfg.get("protocol"), net, scale)
    upscaler(net, scale)  # a network at another scale fails before any image is read
    if isinstance(net, Bicubic):
        results = {"model": net.name, "genome": None, "weights": None, "params": None, "mult_adds": None}
    else:
        if not cfg.model.get("weights"):
            log.warning("model.weights is not set: evaluating an untrained network")
        device = pick_device(cfg.device)
        net = with_precision(net.to(device).eval().to(memory_format=torch.channels_last), precision)
        lr_size = default_lr_size(scale)
        cost = genome_cost(net.genome, lr_size, scale)
        results = {
            "model": net.name,
            "genome": str(net.genome),
            "weights": cfg.model.get("weights"),
            "params": cost.params,
            "mult_adds": cost.mult_adds,
            "mult_adds_lr_size": list(lr_size),
        }
    results.update(precision=precision, scale=scale, protocol=protocol, border=protocol_border(scale), datasets={})
    for name in benchmarks:
        results["datasets"][name] = evaluate_dataset(
            net, cfg.paths.data_dir, name, cfg.tile, scale=scale, protocol=protocol
        )
    out = Path(HydraConfig.get().runtime.output_dir) / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(format_table(results))
    print(f"x{scale}, protocol={protocol} (border {protocol_border(scale)} px; see falsr.protocol.metrics)")
    print(f"results: {out}")
    return results
