"""Latency on the target device: measured end to end, and predicted from a per-cell lookup table.

Mult-adds are a poor stand-in for speed (FALSR-A runs near the fp32 matmul rate, FALSR-B far below it), so the
search can rank by measured milliseconds instead. The way a deployer runs a network is fixed by
:class:`LatencySettings` (backend, precision, threads, input size); a lookup table (:mod:`falsr.latency.table`)
holds each part's time under one such setting, on one device, in a file named by their fingerprint, so a table
measured elsewhere or under other settings is never read.

    python -m falsr.latency profile backend=onnxruntime precision=fp32    # build (or resume) the table
    python -m falsr.latency predict model=falsr_b                         # table sum vs end-to-end measurement

- :mod:`falsr.latency.__main__` the command line: ``profile`` and ``predict``
- :mod:`falsr.latency.measure`  timing a module per backend and precision (warm-up, median, spread, pinned threads)
- :mod:`falsr.latency.table`    the per-part lookup table: parts of a genome, profiling (resumable), prediction
"""

# No `from __future__ import annotations`: LatencySettings is also the typed `search.latency` node (OmegaConf reads
# its annotations as types).

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional, Tuple

from falsr.errors import UserError
from falsr.space.cost import lr_size_of_720p
from falsr.space.genome import DEFAULT_SCALE, SCALES

BACKENDS = ("eager", "compile", "onnxruntime")
PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("channels_last", "contiguous")
TABLE_VERSION = 1  # bump when what an entry measures changes: old tables are then never read


def deploy_lr_size(scale: int = DEFAULT_SCALE) -> tuple[int, int]:
    """The deployer's default frame: the LR size of a 1280x720 output at `scale` (360x640 at x2; at x3/x4 the same
    size costs are reported at, falsr.space.cost.default_lr_size)."""
    return lr_size_of_720p(scale)


class LatencyError(UserError):
    """A latency setting or table that cannot be used; the message names the key and the valid values."""


@dataclass
class LatencySettings:
    """How a network is timed: what a deployer would run, batch 1."""

    backend: str = "onnxruntime"  # eager (PyTorch), compile (torch.compile, slow to build), onnxruntime (CPU provider)
    precision: str = "fp32"  # fp32 or bf16 (eager/compile: weights and input cast to bf16)
    threads: int = 1  # torch's intra-op threads / onnxruntime's intra_op_num_threads
    scale: int = 2  # the networks' upscaling factor (the upsampler's; a search sets it to data.scale)
    lr_size: Optional[Tuple[int, int]] = None  # [height, width] of the LR input; None: a 1280x720 output's LR
    memory_format: str = "channels_last"  # eager/compile: channels_last is the faster one here (bench/inference.py)
    warmup: int = 2  # untimed runs first (oneDNN primitive creation, onnxruntime's arena)
    repeats: int = 7  # timed runs; the median is kept, the interquartile range / median is the spread
    min_run_ms: float = 5.0  # a run repeats a fast call until it takes this long (timer resolution, call overhead)
    pin: bool = True  # pin the process to `threads` CPUs while measuring
    noisy_spread: float = 0.15  # a spread above this prints a one-line warning: the machine is too noisy
    cache_dir: Optional[str] = None  # lookup tables; None: $FALSR_LATENCY_DIR, else ~/.cache/falsr/latency

    def __post_init__(self):
        for name, allowed in (("backend", BACKENDS), ("precision", PRECISIONS), ("memory_format", MEMORY_FORMATS)):
            if getattr(self, name) not in allowed:
                raise LatencyError(
                    f"unknown latency.{name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}"
                )
        if self.backend == "onnxruntime" and self.precision == "bf16":
            raise LatencyError(
                "latency.precision=bf16 with backend=onnxruntime: onnxruntime's CPU provider has no "
                "bf16 convolution; use precision=fp32, or backend=eager for bf16"
            )
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise LatencyError(f"latency.threads={self.threads!r}: use an integer >= 1")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale not in SCALES:
            raise LatencyError(f"latency.scale={self.scale!r}: choose one of {', '.join(map(str, SCALES))}")
        if self.lr_size is None:
            self.lr_size = deploy_lr_size(self.scale)
        elif isinstance(self.lr_size, int):
            self.lr_size = (int(self.lr_size), int(self.lr_size))
        try:
            h, w = self.lr_size
            self.lr_size = (int(h), int(w))
        except (TypeError, ValueError):
            raise LatencyError(f"latency.lr_size={self.lr_size!r}: give [height, width] or an int (square)") from None
        if min(self.lr_size) < 1:
            raise LatencyError(f"latency.lr_size={list(self.lr_size)}: sizes must be positive")
        for name in ("warmup", "repeats"):
            if int(getattr(self, name)) < (0 if name == "warmup" else 3):
                raise LatencyError(f"latency.{name}={getattr(self, name)}: use at least {0 if name == 'warmup' else 3}")

    @classmethod
    def from_dict(cls, data) -> "LatencySettings":
        """From a config node or dict; an unknown key is a one-line error naming the known ones."""
        if data is None:
            return cls()
        if hasattr(data, "_get_node"):
            from omegaconf import OmegaConf

            data = OmegaConf.to_container(data, resolve=True)
        data = {k: v for k, v in dict(data).items() if k != "_target_"}
        known = [f.name for f in fields(cls)]
        if unknown := [k for k in data if k not in known]:
            raise LatencyError(f"unknown key latency.{unknown[0]}: the latency settings are {', '.join(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["lr_size"] = list(self.lr_size)
        return out

    def fingerprint(self) -> dict:
        """What a measurement depends on: device, library, threads, backend, precision, input size, layout."""
        lib = _library_version(self.backend)
        return {
            "version": TABLE_VERSION,
            "device": device_name(),
            "library": lib,
            "threads": self.threads,
            "backend": self.backend,
            "precision": self.precision,
            "scale": self.scale,
            "lr_size": list(self.lr_size),
            "memory_format": self.memory_format if self.backend != "onnxruntime" else "contiguous",
        }

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]

    def table_path(self) -> Path:
        base = self.cache_dir or os.environ.get("FALSR_LATENCY_DIR") or Path.home() / ".cache" / "falsr" / "latency"
        h, w = self.lr_size
        return Path(base) / f"{self.backend}-{self.precision}-t{self.threads}-x{self.scale}-{h}x{w}-{self.key()}.jsonl"

    def describe(self) -> str:
        h, w = self.lr_size
        return f"{self.backend} {self.precision} {self.threads} thread(s) x{self.scale} {h}x{w}"


def device_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), the machine type elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_version(backend: str) -> str:
    import torch

    if backend == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise LatencyError(
                "latency.backend=onnxruntime needs onnxruntime: pip install onnxruntime (or pip install -e .[export])"
            ) from None
        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


@dataclass
class Timing:
    """One measurement: median milliseconds and the spread (interquartile range / median) over `runs`."""

    ms: float
    spread: float
    runs: int
    samples: List[float] = field(default_factory=list)
