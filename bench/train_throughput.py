"""FALSR-B training throughput on this machine, fp32 vs bf16, against a plain matmul of the same dtype.

    python bench/train_throughput.py                  # speed only (~1 min)
    python bench/train_throughput.py --cells          # + the bf16 speed-up of each of the 160 distinct cells
    python bench/train_throughput.py --accuracy 1000  # + Set5 PSNR after 1000 steps, 3 seeds each (needs data)

Speed: training steps (forward, L1, backward, Adam) of batch 16 on 32x32 LR patches; achieved GFLOP/s counts
forward+backward as 3 x the forward mult-adds x 2 FLOPs (falsr.space.cost). Each rate is also given as a ratio to a
large matmul of the same dtype timed in the same run (what the CPU can do at best). The configurations are
timed in interleaved rounds (median reported) so that a noisy neighbour slows them alike, and the profiler
gives the time inside the convolution kernels alone: their bf16/fp32 ratio is the ceiling of the speed-up.
Accuracy: `falsr.training.train.train` with budget=cpu shortened to --accuracy steps, fp32 and bf16-mixed over 3 seeds.
What it prints is also written to bench/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from falsr.space.cost import genome_cost
from falsr.space.genome import CELL_CHOICES, Genome
from falsr.space.network import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Report

REPORT = Report("train_throughput")
FALSR_B = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"


def cpu_features() -> str:
    """What sets the bf16 ceiling: AMX tiles, else AVX512-BF16's dot product (2 bf16 FMAs per fp32 lane)."""
    cpu = getattr(torch, "cpu", None)
    has = {
        name: bool(getattr(cpu, f"_is_{probe}_supported", lambda: False)())
        for name, probe in (("AMX", "amx_tile"), ("AVX512-BF16", "avx512_bf16"))
    }
    return ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in has.items())


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def training_step(genome, bf16: bool, channels_last: bool, batch: int, patch: int, warmup: int):
    """A ready-to-time training step (forward, L1, backward, Adam) as Lightning's bf16-mixed runs it
    (autocast around the forward and the loss), after `warmup` steps (oneDNN builds kernels per shape)."""
    torch.manual_seed(0)
    net = build_network(genome)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x = torch.rand(batch, 1, patch, patch).contiguous(memory_format=fmt)
    y = torch.rand(batch, 1, 2 * patch, 2 * patch)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = torch.nn.functional.l1_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    return step


def seconds_per_step(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def interleaved(steps_by_name: dict, steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per step of each configuration, timed in alternating rounds so that a slow spell of a
    shared machine hits all of them alike; the median of the rounds is what we report."""
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for _ in range(rounds):
        for name, step in steps_by_name.items():
            times[name].append(seconds_per_step(step, steps))
    return times


def conv_seconds(step, steps: int) -> float:
    """Seconds per step spent inside oneDNN convolution kernels (forward and backward), by the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    conv_ops = ("aten::mkldnn_convolution", "aten::convolution_backward")
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in conv_ops) / 1e6 / steps


def speed(args) -> None:
    flop_per_step = 3 * 2 * genome_cost(FALSR_B, (args.patch, args.patch)).mult_adds * args.batch
    REPORT.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_features()}; FALSR-B, batch "
        f"{args.batch}, {args.patch}x{args.patch} LR patches, {flop_per_step / 1e9:.1f} GFLOP per training step"
    )
    mm = {torch.float32: matmul_gflops(torch.float32), torch.bfloat16: matmul_gflops(torch.bfloat16)}
    REPORT.print(
        f"matmul 2048^2: fp32 {mm[torch.float32]:.0f} GFLOP/s, bf16 {mm[torch.bfloat16]:.0f} GFLOP/s "
        f"({mm[torch.bfloat16] / mm[torch.float32]:.2f}x)"
    )
    configs = {
        "fp32 NCHW": (False, False),
        "fp32 channels_last": (False, True),
        "bf16 NCHW": (True, False),
        "bf16 channels_last": (True, True),
    }
    steps = {
        name: training_step(FALSR_B, bf16, cl, args.batch, args.patch, args.warmup)
        for name, (bf16, cl) in configs.items()
    }
    times = interleaved(steps, args.steps, args.rounds)
    median = {name: statistics.median(t) for name, t in times.items()}
    REPORT.print(
        f"median of {args.rounds} interleaved rounds of {args.steps} steps (min-max of the rounds in brackets):"
    )
    for name, (bf16, _) in configs.items():
        t = median[name]
        gflops = flop_per_step / t / 1e9
        ref = mm[torch.bfloat16 if bf16 else torch.float32]
        REPORT.print(
            f"{name:<20} {t * 1000:7.1f} ms/step [{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}] "
            f"{args.batch / t:7.1f} images/s {gflops:7.1f} GFLOP/s = {gflops / ref:6.1%} of the "
            f"{'bf16' if bf16 else 'fp32'} matmul"
        )
    speedup = median["fp32 channels_last"] / median["bf16 channels_last"]
    REPORT.values.update(
        cpu_features=cpu_features(),
        matmul_gflops={"fp32": mm[torch.float32], "bf16": mm[torch.bfloat16]},
        seconds_per_step=median,
        bf16_speedup=speedup,
        channels_last_speedup=median["fp32 NCHW"] / median["fp32 channels_last"],
        gflops={name: flop_per_step / t / 1e9 for name, t in median.items()},
    )
    REPORT.print(
        f"bf16 / fp32 speed-up (channels_last): {speedup:.2f}x "
        f"[rounds {min(a / b for a, b in zip(times['fp32 channels_last'], times['bf16 channels_last'])):.2f}-"
        f"{max(a / b for a, b in zip(times['fp32 channels_last'], times['bf16 channels_last'])):.2f}x]; "
        f"channels_last / NCHW (fp32): {median['fp32 NCHW'] / median['fp32 channels_last']:.2f}x"
    )
    conv_rounds: dict[str, list[float]] = {"fp32 channels_last": [], "bf16 channels_last": []}
    for _ in range(3):  # interleaved too, median
        for name, seconds in conv_rounds.items():
            seconds.append(conv_seconds(steps[name], args.steps))
    conv = {name: statistics.median(seconds) for name, seconds in conv_rounds.items()}
    REPORT.values["conv_bf16_speedup"] = conv["fp32 channels_last"] / conv["bf16 channels_last"]
    REPORT.print(
        f"inside the convolution kernels alone (profiler): fp32 {conv['fp32 channels_last'] * 1000:.1f} ms/step, "
        f"bf16 {conv['bf16 channels_last'] * 1000:.1f} ms/step = {conv['fp32 channels_last'] / conv['bf16 channels_last']:.2f}x: "
        f"the bf16 speed-up if everything outside the convolutions took no time"
    )


def cells(args) -> None:
    """bf16 / fp32 speed-up of every distinct cell choice (a 3-cell chain of it), channels_last.

    A quick scan (2 rounds of 3 steps per cell): fine at the default batch 16 / 32x32, but at tiny sizes
    (steps of a few ms) single cells can be off by 2x; time those again with more steps before concluding.
    """
    ratios = []
    for i, cell in enumerate(CELL_CHOICES):
        if cell.canonical() != cell:  # a one-repeat residual flag changes nothing: same network
            continue
        genome = Genome.from_string(f"{i}.{i}.{i}-000_00_0")
        steps = {bf16: training_step(genome, bf16, True, args.batch, args.patch, 2) for bf16 in (False, True)}
        times = interleaved(steps, 3, 2)
        ratio = statistics.median(times[False]) / statistics.median(times[True])
        ratios.append((ratio, cell.name))
        REPORT.print(
            f"{cell.name:<36} fp32 {statistics.median(times[False]) * 1000:6.1f} ms/step, "
            f"bf16 {statistics.median(times[True]) * 1000:6.1f} ms/step: {ratio:.2f}x",
            flush=True,
        )
    ratios.sort()
    REPORT.values["cells_bf16_speedup"] = {name: r for r, name in ratios}
    values = [r for r, _ in ratios]
    REPORT.print(
        f"{len(ratios)} cells: bf16 / fp32 speed-up median {statistics.median(values):.2f}x, "
        f"slowest {ratios[0][0]:.2f}x ({ratios[0][1]}), fastest {ratios[-1][0]:.2f}x ({ratios[-1][1]}); "
        f"bf16 slower than fp32 for {sum(r < 1 for r in values)} of them"
    )


def accuracy(args) -> None:
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR
    from falsr.training.train import train

    results: dict[str, list[float]] = {"32-true": [], "bf16-mixed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in results:
            for seed in range(args.seeds):
                with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                    cfg = compose(
                        "train",
                        overrides=[
                            f"paths.output_dir={tmp}/{precision}-{seed}",
                            "logger=none",
                            f"seed={seed}",
                            f"trainer.precision={precision}",
                            f"trainer.max_steps={args.accuracy}",
                            "trainer.enable_progress_bar=false",
                            f"data.samples_per_epoch={16 * args.accuracy}",
                            *args.override,
                        ],
                    )
                m = train(cfg)
                results[precision].append(m["psnr"])
                REPORT.print(
                    f"{precision:<11} seed {seed}: Set5 {m['psnr']:.3f} dB after {m['steps']} steps "
                    f"({m['train_seconds']:.0f} s)",
                    flush=True,
                )
    for precision, psnrs in results.items():
        REPORT.print(
            f"{precision:<11} mean {statistics.mean(psnrs):.3f} dB, spread (max-min) {max(psnrs) - min(psnrs):.3f} dB,"
            f" stdev {statistics.stdev(psnrs):.3f}"
        )
    REPORT.values["accuracy_psnr"] = results
    drop = statistics.mean(results["32-true"]) - statistics.mean(results["bf16-mixed"])
    spread = max(results["32-true"]) - min(results["32-true"])
    REPORT.print(
        f"bf16 mean PSNR lower than fp32 by {drop:.3f} dB; fp32 seed spread {spread:.3f} dB: "
        f"{'within' if drop <= spread else 'OUTSIDE'} the spread"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32, help="LR patch side")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument("--cells", action="store_true", help="also the bf16 speed-up of every cell choice (~3 min)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--accuracy", type=int, default=0, help="also train this many steps per seed and precision")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy runs")
    parser.add_argument("override", nargs="*", help="extra train.py overrides for the accuracy runs")
    args = parser.parse_args()
    if not args.skip_speed:
        speed(args)
    if args.cells:
        cells(args)
    if args.accuracy:
        accuracy(args)
    REPORT.write()


if __name__ == "__main__":
    main()
