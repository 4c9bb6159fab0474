"""Where an evaluation's time goes: decode, colour (Y in, chroma, RGB out), network, protocol metrics.

Per benchmark folder, times each step of `evaluate.py`'s per-image work with the same functions, then
the whole evaluation (falsr.protocol.evaluate.evaluate_folder) as a ratio to network-only time; with
`--precision fp32 bf16` also the bf16 speed-up and the PSNR/SSIM difference against fp32.
    python bench/evaluate_speed.py [--model falsr_a] [--sets Set5 Set14] [--folder DIR ...]
                                   [--urban N] [--precision fp32 bf16]
`--urban N` synthesises N Urban100-sized pairs (HR 1024x768, LR by MATLAB bicubic) from Set14 HR
images (PIL-bicubic resized) into a temporary folder: Urban100 itself is not in the data folder here.
Weights: <data>/pretrained/FALSR-X.pb for the released models when present, else random init (the
timings do not depend on the weights; the PSNR columns then mean nothing). What it prints is also written to
bench/results/evaluate_speed_<models>_<precisions>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from falsr.cli import CONF_DIR
from falsr.protocol.benchmarks import list_pairs, load_pair
from falsr.protocol.evaluate import evaluate_folder
from falsr.protocol.images import image_files, write_png
from falsr.protocol.metrics import psnr_ssim_y
from falsr.protocol.pipeline import chroma, network_input, predict_y, sr_rgb, with_precision
from falsr.protocol.resize import matlab_downscale
from falsr.space.genome import config_genome
from falsr.weights.model import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Report

URBAN_HR = (1024, 768)  # (W, H): the typical Urban100 image (1024 x 680..1024 x 1024)


def data_dir() -> Path:
    return Path(os.environ.get("FALSR_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


def load_model(name: str, precision: str) -> torch.nn.Module:
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
    pb = data_dir() / "pretrained" / f"{cfg['name']}.pb"
    net = build_model(config_genome(cfg), name=cfg["name"], weights=pb if pb.is_file() else None)
    if not pb.is_file():
        print(f"note: {pb} not found, {name} runs with random weights (timings only)")
    return with_precision(net.eval().to(memory_format=torch.channels_last), precision)


def synth_urban(folder: Path, n: int) -> Path:
    """n Urban100-sized pairs in the release layout, made from the largest Set14 HR images."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(image_files(data_dir() / "benchmarks" / "Set14"), key=lambda p: -Image.open(p).size[0])
    sources = [p for p in sources if p.stem.endswith("_HR")][:n]
    for i, src in enumerate(sources):
        hr = np.array(Image.open(src).convert("RGB").resize(URBAN_HR, Image.BICUBIC))
        write_png(folder / f"img_{i:03d}_SRF_2_HR.png", hr)
        write_png(folder / f"img_{i:03d}_SRF_2_LR.png", matlab_downscale(hr, 2))
    return folder


def timed(fn, *args):
    """(result, CPU seconds, wall seconds). CPU time is the robust figure on a shared machine (another job's
    load stretches wall time, not CPU time); the wall time shows the decoding thread's overlap."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def split(net, folder: Path) -> dict:
    """Per-step seconds over a folder (summed over images) and the mean PSNR/SSIM."""
    steps = dict(decode=0.0, colour=0.0, network=0.0, protocol=0.0)
    scores = []
    for name, hr_path, lr_path in list_pairs(folder):
        pair, t, _ = timed(load_pair, name, hr_path, lr_path)
        steps["decode"] += t
        (y, pbpr), t, _ = timed(lambda lr: (network_input(lr)[None], chroma(lr)[None]), pair.lr)
        steps["colour"] += t
        sr_y, t, _ = timed(predict_y, net, y)
        steps["network"] += t
        sr, t, _ = timed(lambda a, b: sr_rgb(a.to(torch.float64), b)[0].permute(1, 2, 0).numpy(), sr_y, pbpr)
        steps["colour"] += t
        score, t, _ = timed(psnr_ssim_y, sr, pair.hr)
        steps["protocol"] += t
        scores.append(score)
    psnr, ssim = np.mean(scores, axis=0)
    return {**steps, "psnr": float(psnr), "ssim": float(ssim), "images": len(scores)}


def network_only(net, folder: Path) -> tuple[float, float]:
    """CPU and wall seconds of predict_y alone over a folder's LR images, decoded beforehand."""
    ys = [network_input(pair.lr)[None] for pair in load_benchmark_folder(folder)]
    times = [timed(predict_y, net, y)[1:] for y in ys]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def load_benchmark_folder(folder: Path):
    return [load_pair(*p) for p in list_pairs(folder)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["falsr_a"], help="config names in conf/model (falsr_a/b/c)")
    parser.add_argument("--sets", nargs="*", default=["Set5", "Set14"], help="benchmarks under <data>/benchmarks")
    parser.add_argument("--folder", nargs="*", default=[], help="further benchmark folders")
    parser.add_argument("--urban", type=int, default=0, help="synthesise N Urban100-sized pairs from Set14")
    parser.add_argument("--precision", nargs="*", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--repeats", type=int, default=1, help="network-only and whole timings: best of N")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-evaluation timing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report, rows = Report(f"evaluate_speed_{'_'.join(args.model)}_{'_'.join(args.precision)}"), []
    folders = [data_dir() / "benchmarks" / s for s in args.sets] + [Path(f) for f in args.folder]
    with tempfile.TemporaryDirectory() as tmp:
        if args.urban:
            folders.append(synth_urban(Path(tmp) / "Urban100-sized", args.urban))
        report.print(f"threads: {torch.get_num_threads()}")
        report.print(
            "CPU seconds per folder by step; whole = evaluate_folder; ratio = whole / network-only (CPU, wall)"
        )
        report.print(
            f"{'model':<9} {'folder':<15} {'prec':<5} {'imgs':>4} {'decode':>7} {'colour':>7} {'network':>8} {'protocol':>8} "
            f"{'net-only':>8} {'whole':>7} {'ratio':>6} {'wall':>6} {'PSNR':>8} {'SSIM':>7}"
        )
        for model, precision in ((m, p) for m in args.model for p in args.precision):
            net = load_model(model, precision)
            predict_y(net, torch.rand(1, 1, 64, 64))  # warm-up (oneDNN primitive creation)
            for folder in folders:
                s = split(net, folder)
                net_cpu, net_wall = (min(t) for t in zip(*(network_only(net, folder) for _ in range(args.repeats))))
                whole_cpu = whole_wall = float("nan")
                if not args.no_whole:
                    runs = [timed(evaluate_folder, net, folder, None, False)[1:] for _ in range(args.repeats)]
                    whole_cpu, whole_wall = (min(t) for t in zip(*runs))
                rows.append(
                    {
                        "model": model,
                        "folder": folder.name,
                        "precision": precision,
                        **s,
                        "network_only": net_cpu,
                        "whole": whole_cpu,
                        "ratio": whole_cpu / net_cpu,
                        "wall_ratio": whole_wall / net_wall,
                    }
                )
                report.print(
                    f"{model:<9} {folder.name:<15} {precision:<5} {s['images']:>4} {s['decode']:7.2f} {s['colour']:7.2f} "
                    f"{s['network']:8.2f} {s['protocol']:8.2f} {net_cpu:8.2f} {whole_cpu:7.2f} "
                    f"{whole_cpu / net_cpu:6.3f} {whole_wall / net_wall:6.3f} {s['psnr']:8.4f} {s['ssim']:7.5f}"
                )
    report.write(rows=rows)


if __name__ == "__main__":
    main()
