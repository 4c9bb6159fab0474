"""FALSR-B training throughput on this machine, fp32 vs bf16, against a plain matmul of the same dtype.

    python bench/train_throughput.py                  # speed only (~1 min)
    python bench/train_throughput.py --accuracy 300   # + Set5 PSNR after 300 steps, 3 seeds each (needs data)

Speed: training steps (forward, L1, backward, Adam) of batch 16 on 32x32 LR patches; achieved GFLOP/s counts
forward+backward as 3 x the forward mult-adds x 2 FLOPs (falsr.cost). Each rate is also given as a ratio to a
large matmul of the same dtype timed in the same run (what the CPU can do at best).
Accuracy: `falsr.train.train` with trainer=cpu shortened to --accuracy steps, fp32 and bf16-mixed over 3 seeds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from falsr.cost import genome_cost
from falsr.network import build_network

FALSR_B = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def train_rate(bf16: bool, channels_last: bool, batch: int, patch: int, steps: int, warmup: int) -> float:
    """Seconds per training step, as Lightning's bf16-mixed runs it (autocast around forward and loss)."""
    torch.manual_seed(0)
    net = build_network(FALSR_B)
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

    for _ in range(warmup):  # oneDNN builds its kernels for a new shape in the first steps
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def speed(args) -> None:
    flop_per_step = 3 * 2 * genome_cost(FALSR_B, (args.patch, args.patch)).mult_adds * args.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; FALSR-B, batch {args.batch}, "
          f"{args.patch}x{args.patch} LR patches, {flop_per_step / 1e9:.1f} GFLOP per training step")
    mm = {torch.float32: matmul_gflops(torch.float32), torch.bfloat16: matmul_gflops(torch.bfloat16)}
    print(f"matmul 2048^2: fp32 {mm[torch.float32]:.0f} GFLOP/s, bf16 {mm[torch.bfloat16]:.0f} GFLOP/s")
    rows = {}
    for name, bf16, cl in (("fp32 NCHW", False, False), ("fp32 channels_last", False, True),
                           ("bf16 NCHW", True, False), ("bf16 channels_last", True, True)):
        t = train_rate(bf16, cl, args.batch, args.patch, args.steps, args.warmup)
        gflops = flop_per_step / t / 1e9
        ref = mm[torch.bfloat16 if bf16 else torch.float32]
        rows[name] = t
        print(f"{name:<20} {t * 1000:7.1f} ms/step {args.batch / t:7.1f} images/s {gflops:7.1f} GFLOP/s "
              f"= {gflops / ref:6.1%} of the {'bf16' if bf16 else 'fp32'} matmul")
    print(f"bf16 / fp32 speed-up (channels_last): {rows['fp32 channels_last'] / rows['bf16 channels_last']:.2f}x; "
          f"channels_last / NCHW (fp32): {rows['fp32 NCHW'] / rows['fp32 channels_last']:.2f}x")


def accuracy(args) -> None:
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR
    from falsr.train import train

    results: dict[str, list[float]] = {"32-true": [], "bf16-mixed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in results:
            for seed in range(args.seeds):
                with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                    cfg = compose("train", overrides=[
                        f"paths.output_dir={tmp}/{precision}-{seed}", "logger=none", f"seed={seed}",
                        f"trainer.precision={precision}", f"trainer.max_steps={args.accuracy}",
                        "trainer.enable_progress_bar=false", f"data.samples_per_epoch={16 * args.accuracy}",
                        *args.override])
                m = train(cfg)
                results[precision].append(m["psnr"])
                print(f"{precision:<11} seed {seed}: Set5 {m['psnr']:.3f} dB after {m['steps']} steps "
                      f"({m['train_seconds']:.0f} s)", flush=True)
    for precision, psnrs in results.items():
        print(f"{precision:<11} mean {statistics.mean(psnrs):.3f} dB, spread (max-min) {max(psnrs) - min(psnrs):.3f} dB,"
              f" stdev {statistics.stdev(psnrs):.3f}")
    drop = statistics.mean(results["32-true"]) - statistics.mean(results["bf16-mixed"])
    spread = max(results["32-true"]) - min(results["32-true"])
    print(f"bf16 mean PSNR lower than fp32 by {drop:.3f} dB; fp32 seed spread {spread:.3f} dB: "
          f"{'within' if drop <= spread else 'OUTSIDE'} the spread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32, help="LR patch side")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--accuracy", type=int, default=0, help="also train this many steps per seed and precision")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy runs")
    parser.add_argument("override", nargs="*", help="extra train.py overrides for the accuracy runs")
    args = parser.parse_args()
    if not args.skip_speed:
        speed(args)
    if args.accuracy:
        accuracy(args)


if __name__ == "__main__":
    main()
