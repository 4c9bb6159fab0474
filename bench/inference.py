"""FALSR-A/B/C inference speed on a 480x480 LR input (the paper's mult-adds convention).

Prints, per model and way of running it (PyTorch eager in fp32 contiguous / channels_last and in bf16, ONNX
Runtime fp32, torch.compile in fp32 and bf16), the best seconds per image, the achieved GFLOP/s (2 FLOPs per mult-add) and that rate as a fraction
of a large matmul of the same precision timed in the same run (issue 26's goal: the fastest fp32 way at >= 0.7);
writes them to bench/results/<--name>.{json,md} (default inference; another machine's run gets its own name, so
the figures of each CPU stay beside each other). Uses all of torch's threads.
With --matmul beside, each row's fraction is of a matmul timed right after that network (on a machine whose speed
drifts within a run, the once-per-run matmul is no fixed limit); --precisions fp32 skips the bf16 ways.
    python bench/inference.py [--size 480] [--repeats 3] [--name inference_<machine>] [--matmul beside]
        [--backends eager,onnxruntime,compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

from falsr.cli import CONF_DIR
from falsr.latency import LatencySettings
from falsr.latency.measure import pinned, runner
from falsr.protocol.pipeline import DTYPES, fast_bf16
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


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype=torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9


# (name, backend, precision, memory format): PyTorch eager in both memory formats, eager bf16, ONNX Runtime's CPU
# provider (the exported network), torch.compile (inductor, built once per way before timing) in fp32 and bf16;
# falsr.latency.measure.runner builds each call the way the latency bench does.
WAYS = (
    ("eager fp32 contiguous", "eager", "fp32", "contiguous"),
    ("eager fp32 channels_last", "eager", "fp32", "channels_last"),
    ("onnxruntime fp32", "onnxruntime", "fp32", "channels_last"),
    ("compile fp32 channels_last", "compile", "fp32", "channels_last"),
    ("eager bf16 channels_last", "eager", "bf16", "channels_last"),
    ("compile bf16 channels_last", "compile", "bf16", "channels_last"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="inference", help="the results' file name in bench/results/")
    parser.add_argument(
        "--matmul",
        choices=("once", "beside"),
        default="once",
        help="once: one matmul per run, before the networks; beside: a matmul timed right after each network, its "
        "row's fraction taken of that one (for machines whose speed drifts between the start and the end of a run)",
    )
    parser.add_argument("--precisions", default="fp32,bf16", help="the ways' precisions to run (fp32, bf16)")
    parser.add_argument(
        "--backends",
        default="eager,onnxruntime,compile",
        help="the ways' backends to run (eager, onnxruntime, compile: torch.compile builds each way first, ~1 min)",
    )
    args = parser.parse_args()
    precisions = {p.strip() for p in args.precisions.split(",") if p.strip()}
    backends = {b.strip() for b in args.backends.split(",") if b.strip()}
    known = {w[1] for w in WAYS}
    if not backends or not backends <= known:
        parser.error(f"--backends {args.backends}: choose among {', '.join(sorted(known))}")
    report, rows = Report(args.name), []
    threads = torch.get_num_threads()
    # Without AVX512-BF16/AMX, bf16 is emulated and its matmul is no limit to compare with (0.3 GFLOP/s on an AVX2
    # EPYC, below its convolutions; one 2048^2 product takes about a minute): the bf16 rows then keep their times,
    # not a fraction, and that matmul is not timed.
    bf16_limit = fast_bf16()
    peak = {"fp32": matmul_gflops(), "bf16": None}
    if "bf16" in precisions and bf16_limit:
        peak["bf16"] = matmul_gflops(dtype=torch.bfloat16)
    if not bf16_limit:
        report.print("this CPU has no fast bf16 (AVX512-BF16/AMX): bf16 rows are times only, no fraction")
    report.print(
        f"threads: {threads}  matmul (2048^2): fp32 {peak['fp32']:.1f} GFLOP/s, bf16 "
        + (f"{peak['bf16']:.1f} GFLOP/s " if peak["bf16"] is not None else "not run ")
        + (
            "(each row's fraction is of the matmul of its precision)"
            if args.matmul == "once"
            else "(each row's fraction is of a matmul of its precision timed right after it: last column)"
        )
    )
    matmul_head = f" {'matmul':>8}" if args.matmul == "beside" else ""
    report.print(f"{'model':<8} {'backend':<25} {'s/img':>7} {'GFLOP/s':>8} {'of matmul':>9}{matmul_head}")
    for letter in "abc":
        cfg = yaml.safe_load((CONF_DIR / "model" / f"falsr_{letter}.yaml").read_text())
        genome = config_genome(cfg)
        flops = 2 * genome_cost(genome, args.size).mult_adds
        for name, backend, precision, fmt in WAYS:
            if precision not in precisions or backend not in backends:
                continue
            settings = LatencySettings(
                backend=backend, precision=precision, threads=threads, memory_format=fmt, pin=False
            )
            net = build_network(genome)
            with pinned(settings):
                call = runner(net, [(1, 1, args.size, args.size)], settings)
                t = best_time(call, args.repeats)
            rate = flops / t / 1e9
            limit = None
            if precision == "fp32" or bf16_limit:
                limit = peak[precision] if args.matmul == "once" else matmul_gflops(dtype=DTYPES[precision])
            share = rate / limit if limit else None
            shown = f"{share:9.1%}" if share is not None else f"{'n/a':>9}"
            beside = f" {limit or float('nan'):8.1f}" if args.matmul == "beside" else ""
            report.print(f"{cfg['name']:<8} {name:<25} {t:7.3f} {rate:8.1f} {shown}{beside}")
            rows.append(
                {
                    "model": cfg["name"],
                    "way": name,
                    "backend": backend,
                    "precision": precision,
                    "format": fmt,
                    "seconds": t,
                    "gflops": rate,
                    "of_matmul": share,
                    "matmul_gflops": limit,
                }
            )
    fastest = {}
    for r in rows:
        if r["precision"] == "fp32" and r["of_matmul"] > fastest.get(r["model"], {"of_matmul": -1})["of_matmul"]:
            fastest[r["model"]] = r
    report.print()
    for model, r in fastest.items():
        report.print(f"{model}: fastest fp32 way {r['way']}, {r['of_matmul']:.1%} of the fp32 matmul")
    report.write(
        lr_size=args.size,
        matmul_gflops=peak["fp32"],
        matmul_gflops_bf16=peak["bf16"],
        rows=rows,
        fastest_fp32={m: r["of_matmul"] for m, r in fastest.items()},
    )


if __name__ == "__main__":
    main()
