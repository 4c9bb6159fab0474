"""FALSR-A/B/C inference speed on a 480x480 LR input (the paper's mult-adds convention).

Prints, per model and memory format, seconds per image, achieved GFLOP/s (2 FLOPs per mult-add)
and that rate as a fraction of a plain large fp32 matmul timed in the same run; writes them to
bench/results/inference.{json,md}.
    python bench/inference.py [--size 480] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

from falsr.cli import CONF_DIR
from falsr.space.cost import genome_cost
from falsr.space.genome import config_genome
from falsr.space.network import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Report


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report, rows = Report("inference"), []
    peak = matmul_gflops()
    report.print(f"threads: {torch.get_num_threads()}  fp32 matmul (2048^2): {peak:.1f} GFLOP/s")
    report.print(f"{'model':<8} {'format':<15} {'s/img':>7} {'GFLOP/s':>8} {'of matmul':>9}")
    for letter in "abc":
        cfg = yaml.safe_load((CONF_DIR / "model" / f"falsr_{letter}.yaml").read_text())
        genome = config_genome(cfg)
        flops = 2 * genome_cost(genome, args.size).mult_adds
        x = torch.rand(1, 1, args.size, args.size)
        for fmt in (torch.contiguous_format, torch.channels_last):
            net = build_network(genome).eval().to(memory_format=fmt)
            xi = x.contiguous(memory_format=fmt)
            with torch.inference_mode():
                t = best_time(lambda net=net, xi=xi: net(xi), args.repeats)
            name = "channels_last" if fmt == torch.channels_last else "contiguous"
            report.print(f"{cfg['name']:<8} {name:<15} {t:7.3f} {flops / t / 1e9:8.1f} {flops / t / 1e9 / peak:9.1%}")
            rows.append(
                {
                    "model": cfg["name"],
                    "format": name,
                    "seconds": t,
                    "gflops": flops / t / 1e9,
                    "of_matmul": flops / t / 1e9 / peak,
                }
            )
    report.write(lr_size=args.size, matmul_gflops=peak, rows=rows)


if __name__ == "__main__":
    main()
