"""Real PSNR objective for bench/search_efficiency.py: genome -> PSNR after a short real training.

``short_training_psnr(genome)`` trains the genome's network in-process with the project's own training
task (``falsr.train.train``), its config composed from ``conf/train.yaml`` with Hydra's compose API:
the search's CPU budget (``trainer=search``: Adam 2e-3, warm-up + cosine) cut down to ``STEPS`` steps of
batch ``BATCH`` on ``PATCH``x``PATCH`` HR patches of T91, fp32, no logger, no checkpoints, validated once
at the end on a tiny benchmark set (``VAL_CROPS``: aligned HR/LR crops of Set5 written to a temp
folder). Every candidate uses the same seed, so the objective is a deterministic function of the genome
(same value for any thread count); results are cached per canonical genome key, so a genome is trained
once per process however many searches or seeds meet it.

Data come from ``FALSR_DATA_DIR`` (``train/T91``, ``benchmarks/Set5``), as for train.py. This is the
cheapest *honest* objective, not a converged PSNR: 80 small steps end far below bicubic (about 23..28 dB
on the crops), so it ranks how fast a network starts to learn, which need not be its ranking after a
full budget. Run it with one torch thread (the bench does): on a shared 2-core machine two threads per
process oversubscribe the cores and made candidates 5..10x slower.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


from falsr.genome import Genome

STEPS = 80            # optimizer steps per candidate
BATCH = 8             # 80 x 8 costs what 40 x 16 does and ends ~5 dB higher (more updates matter this early)
PATCH = 32            # HR patch side (LR 16)
WARMUP = 8            # linear warm-up steps, then cosine decay over the rest (trainer=search's schedule, scaled)
# fp32: at this tiny size bf16 gains little and can lose (batch 8, 16x16 LR, 3-cell chains, 5 rounds of 10
# steps: 0.83x for gconv4_f16_k1_b4, 1.0-1.1x for other small cells), and fp32 keeps the objective the
# same on CPUs with and without bf16.
PRECISION = "32-true"
SEED = 0              # same seed for every candidate: same data order, same init stream
VAL_CROPS = ((1, 96), (2, 96))  # (Set5 image number, HR crop side): the validation set
FAILED_PSNR = 10.0    # objective of a candidate whose training failed (NaN, crash): below any trained value


@dataclass
class Stats:
    """What the objective cost: trained candidates, cache hits, failures, seconds of training."""

    trained: int = 0
    cache_hits: int = 0
    failed: int = 0
    seconds: float = 0.0
    times: list = field(default_factory=list)

    def line(self) -> str:
        per = self.seconds / self.trained if self.trained else float("nan")
        spread = (f", min {min(self.times):.1f} s, max {max(self.times):.1f} s" if self.times else "")
        return (f"{self.trained} candidates trained in {self.seconds:.0f} s ({per:.1f} s per candidate{spread}); "
                f"{self.cache_hits} cache hits; {self.failed} failed")


STATS = Stats()


def describe() -> str:
    """One line saying what the objective is (for the bench's output)."""
    crops = ", ".join(f"img_{i:03d} {side}px" for i, side in VAL_CROPS)
    return (f"REAL short training: falsr.train.train, trainer=search cut to {STEPS} steps x batch {BATCH} of "
            f"{PATCH}px HR T91 patches (warm-up {WARMUP}, cosine), precision {PRECISION}, seed {SEED}; "
            f"PSNR (Y, x2) on {len(VAL_CROPS)} Set5 crops ({crops}); failed training -> {FAILED_PSNR} dB")
_CACHE: dict[str, float] = {}
_WORK: Path | None = None


def _workdir() -> Path:
    """A temp folder holding the tiny validation set and the (empty) run folders; removed at exit."""
    global _WORK
    if _WORK is None:
        _WORK = Path(tempfile.mkdtemp(prefix="falsr-bench-"))
        atexit.register(shutil.rmtree, _WORK, True)
        _make_val_set(_WORK / "benchmarks" / "Set5crops")
    return _WORK


def _make_val_set(folder: Path) -> None:
    """Aligned HR/LR crops of Set5 images: HR at even offsets, LR at half of them (the x2 files stay paired)."""
    import os

    from falsr.images import read_rgb, write_png

    data_dir = os.environ.get("FALSR_DATA_DIR")
    if not data_dir:
        raise SystemExit("error: set FALSR_DATA_DIR (a folder with train/T91 and benchmarks/Set5) "
                         "for the real objective")
    set5 = Path(data_dir) / "benchmarks" / "Set5"
    folder.mkdir(parents=True)
    for n, (image, side) in enumerate(VAL_CROPS, start=1):
        hr = read_rgb(set5 / f"img_{image:03d}_SRF_2_HR.png")
        lr = read_rgb(set5 / f"img_{image:03d}_SRF_2_LR.png")
        h, w = min(hr.shape[0], 2 * lr.shape[0]), min(hr.shape[1], 2 * lr.shape[1])
        y, x = (h - side) // 4 * 2, (w - side) // 4 * 2  # central crop, even offsets
        write_png(folder / f"img_{n:03d}_SRF_2_HR.png", hr[y: y + side, x: x + side])
        write_png(folder / f"img_{n:03d}_SRF_2_LR.png", lr[y // 2: (y + side) // 2, x // 2: (x + side) // 2])


def _config(genome: Genome, out: Path):
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR

    work = _workdir()
    overrides = [
        "model=genome", f"model.genome='{genome}'",
        "trainer=search", f"trainer.max_steps={STEPS}", f"trainer.precision={PRECISION}",
        "trainer.enable_progress_bar=false",
        f"scheduler.warmup_steps={WARMUP}",
        f"data.patch_size={PATCH}", f"data.batch_size={BATCH}", f"data.samples_per_epoch={STEPS * BATCH}",
        f"data.benchmarks_dir={work / 'benchmarks'}", "data.val_sets=[Set5crops]",
        "logger=none", "callbacks.model_checkpoint=null",
        f"paths.output_dir={out}", f"seed={SEED}", "ignore_errors=true",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def short_training_psnr(genome: Genome) -> float:
    """PSNR (dB, Y, Set5 crops, x2) of the genome's network after STEPS real training steps on T91 patches.

    Deterministic (fixed seed) and cached per canonical genome key; a failed training scores FAILED_PSNR.
    """
    key = genome.canonical().key
    if key in _CACHE:
        STATS.cache_hits += 1
        return _CACHE[key]
    from falsr.train import train

    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    out = _workdir() / "runs" / key
    cfg = _config(genome, out)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        metrics = train(cfg)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    psnr = metrics.get("psnr")
    if metrics.get("status") != "ok" or psnr is None or not math.isfinite(psnr):
        STATS.failed += 1
        psnr = FAILED_PSNR
    STATS.trained += 1
    STATS.seconds += seconds
    STATS.times.append(seconds)
    _CACHE[key] = float(psnr)
    return float(psnr)
