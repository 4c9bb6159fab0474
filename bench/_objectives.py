"""Real PSNR objective for bench/search_efficiency.py: genome -> PSNR after a short real training.

``train_candidate(genome, inherit_from)`` trains the genome's network in-process with the project's own
training task (``falsr.training.train.train``), its config composed from ``conf/train.yaml`` with Hydra's compose
API: the search's budget (``budget=search``: Adam 2e-3, warm-up + cosine, PyTorch's default init) cut down
to ``STEPS`` steps of batch ``BATCH`` on ``PATCH``x``PATCH`` HR patches of the training images, fp32, no
logger, no checkpoints, validated once at the end on the held-out training images (``data.holdout``, as the
search validates: the test benchmarks never score a candidate). Its final weights are saved (weights.pt
with the genome and the lineage's training steps), so a child can inherit them (``inherit_from``: the
parents' weights files, ``model.inherit_from`` of the search).

Every candidate uses the same seed (common random numbers), so a fresh training is a deterministic
function of the genome: :func:`fresh` caches it per canonical genome key with the CPU seconds it took,
so a method that meets a genome another method trained is charged those seconds all the same. An
inherited training depends on the parents' weights and is never cached. ``use(..., cache=path)`` also keeps
that cache on disk, one JSON line per fresh training, under the objective's description and the machine's
identity: a bench killed mid-run replays what it had trained (charged the seconds it took then) instead of
training it again, and a bench started later reads what every earlier process of it trained.

Data: the default data folder (``data/`` in the repository, or ``FALSR_DATA_DIR``), as for train.py. This
is the cheapest *honest* objective, not a converged PSNR: 80 small steps end far below bicubic, so it
ranks how fast a network starts to learn (bench/proxy_fidelity.py's ``e80`` recipe measures how that
ranks against longer training). Run it with one torch thread (the bench does).

That objective ranks at chance against longer training (tau 0.03). ``use("final")`` is the search's evaluator
now: ``budget=search`` (1000 steps of batch 8 on 48px patches, ``p1000_b8_p48`` of bench/proxy_fidelity.py) ranked
by its final held-out PSNR (``search.estimator=final``), the best one measured (docs/evaluator.md).
``use("ranked")`` is the search's evaluator before it: ``budget=search_p300`` (300 steps, held-out curve
points) ranked by its learning curve extrapolated to ``ESTIMATE_AT`` steps (falsr.training.curves.extrapolate, as
``search.estimator=extrapolated`` does); ``use(..., extra)`` appends training overrides (a test's toy budget).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from falsr.search.settings import SearchConfig
from falsr.space.genome import Genome

STEPS = 80  # optimizer steps per candidate
BATCH = 8  # 80 x 8 costs what 40 x 16 does and ends ~5 dB higher (more updates matter this early)
PATCH = 32  # HR patch side (LR 16)
WARMUP = 8  # linear warm-up steps, then cosine decay over the rest (budget=search's schedule, scaled)
# fp32: at this tiny size bf16 gains little and can lose (batch 8, 16x16 LR, 3-cell chains, 5 rounds of 10
# steps: 0.83x for gconv4_f16_k1_b4, 1.0-1.1x for other small cells), and fp32 keeps the objective the
# same on CPUs with and without bf16.
PRECISION = "32-true"
SEED = 0  # same seed for every candidate: same data order, same init stream
ESTIMATE_AT = SearchConfig.estimate_at  # the ranked objective's step: the search's default (the p2000 reference)
OBJECTIVES = ("real", "ranked", "final")
# "final": budget=search as it is now (bench/proxy_fidelity.py's p1000_b8_p48) spelled out on the budget the
# other objectives' runs were stored with, so that a later change of budget=search cannot change what the stored
# runs of this objective mean (tests/test_search_efficiency.py checks that the two compose alike).
FINAL_RECIPE = (
    "trainer.max_steps=1000",
    "data.batch_size=8",
    "data.patch_size=48",
    "data.samples_per_epoch=8000",
    "scheduler.warmup_steps=50",
    "callbacks.learning_curve.val_steps=[100,200,300,500,700]",
)
_ACTIVE = {"name": "real", "extra": (), "cache": None, "identity": None}


def use(name: str, extra: Sequence[str] = (), cache: Path | None = None, identity: dict | None = None) -> None:
    """Choose the objective for this process: "real" (the 80-step e80 objective), "ranked" (the search's
    evaluator until budget=search became p1000_b8_p48) or "final" (the search's evaluator now); `extra` training
    overrides are appended to every training (and named in describe()).
    `cache`: a JSON-lines file of fresh trainings, read now and appended to; only its lines with this objective's
    description and this `identity` (the machine: its seconds are charged) are used."""
    if name not in OBJECTIVES:
        raise SystemExit(f"error: unknown objective {name!r}: one of {', '.join(OBJECTIVES)}")
    _ACTIVE.update(name=name, extra=tuple(extra), cache=cache, identity=identity)
    _CACHE.clear()
    if cache is not None and cache.is_file():
        ours = {"objective": describe(), "identity": identity}
        for line in cache.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill: that training is simply done again
                continue
            if {k: row.get(k) for k in ours} == ours:
                _CACHE[row["key"]] = Result(**row["result"], weights=None, from_disk=True)


FAILED_PSNR = 10.0  # objective of a candidate whose training failed (NaN, crash): below any trained value
MAX_FAILED = 20  # more failed trainings than this in one process: the set-up is broken, the bench stops


@dataclass
class Result:
    """One training: PSNR on the held-out images, CPU seconds, where its weights are and what it inherited."""

    psnr: float
    seconds: float
    weights: str | None
    inherited_fraction: float = 0.0
    inherited_steps: int = 0
    cached: bool = False
    measured_psnr: float | None = None  # "ranked": the PSNR measured at the end (psnr is the extrapolated one)
    ok: bool = True  # trained without failing (a hit read from the disk cache has no weights file)
    from_disk: bool = False  # read from use()'s cache file: its weights are not kept


@dataclass
class Stats:
    """What the objective cost: trainings, cache hits, failures, CPU seconds of training."""

    trained: int = 0
    cache_hits: int = 0
    failed: int = 0
    seconds: float = 0.0
    times: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def line(self) -> str:
        per = self.seconds / self.trained if self.trained else float("nan")
        spread = f", min {min(self.times):.1f} s, max {max(self.times):.1f} s" if self.times else ""
        return (
            f"{self.trained} candidates trained in {self.seconds:.0f} CPU s ({per:.1f} s per candidate{spread}); "
            f"{self.cache_hits} cache hits; {self.failed} failed"
        )


STATS = Stats()


def describe() -> str:
    """One line saying what the objective is (for the bench's output).

    bench/_timed_efficiency.config_id hashes this sentence into the key of every stored run: a new wording
    orphans the runs stored in bench/results/search_efficiency_real.jsonl, so it keeps the words they were
    stored with (`falsr.train.train`: falsr.training.train.train's name then)."""
    extra = f"; with {' '.join(_ACTIVE['extra'])}" if _ACTIVE["extra"] else ""
    if _ACTIVE["name"] == "ranked":
        return (
            "RANKED: the search's evaluator, falsr.training.train.train with budget=search (300 steps, held-out "
            f"curve points), seed {SEED}; PSNR (Y, x2) on the held-out training images, the curve extrapolated to "
            f"{ESTIMATE_AT} steps (search.estimator=extrapolated); failed training -> {FAILED_PSNR} dB{extra}"
        )
    if _ACTIVE["name"] == "final":
        return (
            "FINAL: the search's evaluator, falsr.training.train.train with budget=search (1000 steps of batch 8, "
            f"48px HR patches, warm-up 50: p1000_b8_p48), seed {SEED}; PSNR (Y, x2) on the held-out training images "
            f"at the end (search.estimator=final); failed training -> {FAILED_PSNR} dB{extra}"
        )
    return (
        f"REAL short training: falsr.train.train, budget=search cut to {STEPS} steps x batch {BATCH} of "
        f"{PATCH}px HR patches of the training images (warm-up {WARMUP}, cosine), precision {PRECISION}, "
        f"seed {SEED}; PSNR (Y, x2) on the held-out training images; failed training -> {FAILED_PSNR} dB{extra}"
    )


_CACHE: dict[str, Result] = {}
_WORK: Path | None = None


def _workdir() -> Path:
    """A temp folder for the run folders and weights; removed at exit."""
    global _WORK
    if _WORK is None:
        _WORK = Path(tempfile.mkdtemp(prefix="falsr-bench-"))
        atexit.register(shutil.rmtree, _WORK, True)
    return _WORK


def overrides(genome: Genome, inherit_from: Sequence[str] = ()) -> list[str]:
    """The train.py overrides of the objective ("real": also bench/proxy_fidelity.py's ``e80`` recipe)."""
    e80 = [
        f"trainer.max_steps={STEPS}",
        f"trainer.precision={PRECISION}",
        f"scheduler.warmup_steps={WARMUP}",
        f"data.patch_size={PATCH}",
        f"data.batch_size={BATCH}",
        f"data.samples_per_epoch={STEPS * BATCH}",
    ]
    out = [
        "model=genome",
        f"model.genome='{genome}'",
        "budget=search_p300",  # the search's budget when the committed runs were stored (describe()'s words stay)
        *(e80 if _ACTIVE["name"] == "real" else []),
        *(FINAL_RECIPE if _ACTIVE["name"] == "final" else []),
        "data.val_sets=[holdout]",
        "logger=none",
        "callbacks.model_checkpoint=null",
        f"seed={SEED}",
        "ignore_errors=true",
        "save_weights=true",
    ]
    if inherit_from:
        out.append("model.inherit_from=[" + ",".join(f"'{p}'" for p in inherit_from) + "]")
    return [*out, *_ACTIVE["extra"]]


def _config(genome: Genome, out: Path, inherit_from: Sequence[str]):
    from hydra import compose, initialize_config_dir

    from falsr.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides(genome, inherit_from), f"paths.output_dir={out}"])


@contextlib.contextmanager
def _search_space_kept():
    """Training makes its own config's space the process's (the default space, whatever the bench's
    ``space.n_cells``); the search reads it. Restored after each training, the search proposes the same genomes
    whether a training ran or a cache hit stood in for it. (Its random streams need nothing here:
    falsr.search.generation.search_random already swaps them in around every ask and tell.)"""
    from falsr.space.genome import active_space, set_space

    space = active_space()
    try:
        yield
    finally:
        set_space(space)


def train_candidate(genome: Genome, inherit_from: Sequence[str] = (), tag: str = "fresh") -> Result:
    """Train once (never cached): the objective's PSNR, CPU seconds, the saved weights' path."""
    from falsr.training.train import train

    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    key = genome.canonical().key
    out = _workdir() / "runs" / tag / key
    cfg = _config(genome, out, inherit_from)
    start = time.process_time()
    with (
        _search_space_kept(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        metrics = train(cfg)
    seconds = time.process_time() - start
    psnr = metrics.get("psnr")
    STATS.trained += 1
    STATS.seconds += seconds
    STATS.times.append(seconds)
    if metrics.get("status") != "ok" or psnr is None or not math.isfinite(psnr):
        STATS.failed += 1
        STATS.errors.append(str(metrics.get("error")))
        if STATS.failed > MAX_FAILED:  # a broken set-up, not a bad network: stop rather than rank failures
            raise SystemExit(f"error: {STATS.failed} trainings failed, the last with: {STATS.errors[-1]}")
        return Result(FAILED_PSNR, seconds, None, ok=False)
    measured = None
    if _ACTIVE["name"] == "ranked":  # the search's own rule (a curve too short to fit keeps the measured PSNR)
        from falsr.search.callbacks import estimate

        measured = float(psnr)
        psnr = estimate(metrics, {"estimator": "extrapolated", "estimate_at": ESTIMATE_AT}).get("psnr", psnr)
    return Result(
        float(psnr),
        seconds,
        metrics.get("weights"),
        float(metrics.get("inherited_fraction") or 0.0),
        int(metrics.get("inherited_steps") or 0),
        measured_psnr=measured,
    )


def fresh(genome: Genome, need_weights: bool = False) -> Result:
    """A fresh (not inherited) training of the genome, cached per key with the seconds it took.

    `need_weights`: a hit read from the disk cache has no weights file, so it is trained again (a child
    inherits from them)."""
    key = genome.canonical().key
    hit = _CACHE.get(key)
    if hit is not None and not (need_weights and hit.from_disk):
        STATS.cache_hits += 1
        return dataclasses.replace(hit, cached=True)
    result = _CACHE[key] = train_candidate(genome)
    if _ACTIVE["cache"] is not None:
        row = {
            "objective": describe(),
            "identity": _ACTIVE["identity"],
            "key": key,
            "genome": str(genome),
            "result": {f: getattr(result, f) for f in ("psnr", "seconds", "measured_psnr", "ok")},
        }
        _ACTIVE["cache"].parent.mkdir(parents=True, exist_ok=True)
        with open(_ACTIVE["cache"], "a") as f:  # one short line per append: two processes never interleave it
            f.write(json.dumps(row) + "\n")
    return result


def short_training_psnr(genome: Genome) -> float:
    """PSNR (dB, Y, held-out training images, x2) of the genome's network after a fresh short training."""
    return fresh(genome).psnr
