"""Does validating in bf16 change the search's ranking, and what does it save?  (issue: the evaluator)

    python bench/bf16_validation.py [--recipes p300,p1000] [--seeds 0,1] [--repeats 2]

Takes the trained panel networks of bench/proxy_fidelity.py (their checkpoints in outputs/bench-runs/,
written by that bench) and validates each on the held-out training images (the search's validation set)
twice: the network's forward in float32 (`module.val_precision=fp32`, the default) and under bf16 autocast
(`"bf16"`); the protocol metrics are the same code either way. Prints, per recipe and seed, the Kendall
tau between the two rankings, the largest PSNR difference and the validation time of each (the best of
`--repeats`), and the whole as a ratio, and writes them to bench/results/bf16_validation.{json,md}. Checkpoints
that are not on this machine are listed, not guessed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _runs
import proxy_fidelity
from _results import Report


def validate(genome: str, ckpt: Path, datamodule, precision: str, repeats: int) -> tuple[float, float]:
    """(PSNR on the held-out images, best validation seconds of `repeats`)."""
    import pytorch_lightning as pl

    from falsr.training.module import SRModule
    from falsr.weights.model import build_model

    net = build_model(genome, init_std=None, weights=ckpt)
    module = SRModule(net, optimizer=None, val_names=datamodule.val_names, val_precision=precision)
    best = float("inf")
    for _ in range(repeats):
        with contextlib.redirect_stderr(io.StringIO()):
            trainer = pl.Trainer(
                accelerator="cpu",
                devices=1,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
            )
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.validate(module, datamodule=datamodule, verbose=False)
        best = min(best, time.perf_counter() - start)
    return module.val_results["holdout"]["psnr"], best


def main(argv=None) -> int:
    import logging

    from hydra.utils import instantiate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="p300,p1000")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    _runs.set_threads(args.threads)
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = _runs.compose(["data.val_sets=[holdout]"], _runs.RUNS_DIR / "bf16-validation")
    datamodule = instantiate(cfg.data)
    datamodule.setup("validate")
    done = _runs.load_store()
    report, rows = Report("bf16_validation", argv), []
    totals = {"fp32": 0.0, "bf16": 0.0}
    diffs_all = []
    lines = [
        "| recipe | seed | networks | tau(fp32, bf16) | max abs PSNR diff (dB) | fp32 s | bf16 s | bf16 / fp32 time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    missing = []
    for recipe in args.recipes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            psnr = {"fp32": [], "bf16": []}
            secs = {"fp32": 0.0, "bf16": 0.0}
            for label, genome, _ in proxy_fidelity.PANEL:
                rec = done.get(_runs.run_key(proxy_fidelity.run_overrides(label, genome, recipe, seed)))
                ckpt = _runs.checkpoint(rec) if rec else None
                if ckpt is None:
                    missing.append(f"{recipe}/s{seed}/{label}")
                    continue
                for precision in ("fp32", "bf16"):
                    value, seconds = validate(genome, ckpt, datamodule, precision, args.repeats)
                    psnr[precision].append(value)
                    secs[precision] += seconds
                print(
                    f"{recipe}/s{seed}/{label}: fp32 {psnr['fp32'][-1]:.4f} dB, bf16 {psnr['bf16'][-1]:.4f} dB",
                    flush=True,
                )
            if len(psnr["fp32"]) < 3:
                continue
            diff = np.abs(np.subtract(psnr["fp32"], psnr["bf16"]))
            diffs_all.extend(diff)
            for p in totals:
                totals[p] += secs[p]
            rows.append(
                {
                    "recipe": recipe,
                    "seed": seed,
                    "networks": len(diff),
                    "tau": kendalltau(psnr["fp32"], psnr["bf16"]).statistic,
                    "max_abs_diff_db": diff.max(),
                    "fp32_seconds": secs["fp32"],
                    "bf16_seconds": secs["bf16"],
                }
            )
            lines.append(
                f"| {recipe} | {seed} | {len(diff)} | {kendalltau(psnr['fp32'], psnr['bf16']).statistic:.3f} | "
                f"{diff.max():.4f} | {secs['fp32']:.2f} | {secs['bf16']:.2f} | {secs['bf16'] / secs['fp32']:.2f} |"
            )
    report.print()
    report.print("\n".join(lines))
    if diffs_all:
        report.print(
            f"\nall: max abs PSNR difference {max(diffs_all):.4f} dB, mean {np.mean(diffs_all):.4f} dB; validation time "
            f"bf16 / fp32 = {totals['bf16'] / totals['fp32']:.2f} (torch threads {args.threads})"
        )
    if missing:
        report.print(
            f"\ncheckpoints not on this machine ({len(missing)}): {', '.join(missing[:8])}"
            + (" ..." if len(missing) > 8 else "")
            + " (run bench/proxy_fidelity.py)"
        )
    if rows:
        report.write(
            rows=rows,
            max_abs_diff_db=max(diffs_all),
            mean_abs_diff_db=float(np.mean(diffs_all)),
            time_ratio=totals["bf16"] / totals["fp32"],
            missing=missing,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
