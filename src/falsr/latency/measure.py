"""Time a module the way a deployer runs it: batch 1, a fixed input size, pinned threads, one backend.

Each backend turns a module into a call on prepared inputs (`runner`); `time_call` warms it up, repeats it and
keeps the median, so a few slow runs on a shared machine do not move the result; the spread says when they
were more than a few.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import timeit
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from falsr.latency import LatencyError, LatencySettings, Timing

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@contextlib.contextmanager
def pinned(settings: LatencySettings):
    """torch's intra-op threads set to `threads`; with `pin`, the process pinned to that many of its CPUs (threads
    started later inherit it). Both restored after."""
    threads, affinity = torch.get_num_threads(), None
    torch.set_num_threads(settings.threads)
    if settings.pin and hasattr(os, "sched_setaffinity"):
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, sorted(affinity)[: settings.threads])
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def runner(module: nn.Module, shapes: Sequence[tuple[int, ...]], settings: LatencySettings) -> Callable[[], object]:
    """A no-argument call running `module` on random inputs of `shapes` with the settings' backend and precision."""
    module = module.eval()
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(*s, generator=gen) for s in shapes]
    if settings.backend == "onnxruntime":
        return _ort_runner(module, inputs, settings)
    dtype = _DTYPES[settings.precision]
    fmt = torch.channels_last if settings.memory_format == "channels_last" else torch.contiguous_format
    module = module.to(dtype=dtype, memory_format=fmt)
    inputs = [x.to(dtype).contiguous(memory_format=fmt) for x in inputs]
    if settings.backend == "compile":
        # Every part of a table runs the same forward code, so without a reset dynamo's recompile limit (8) is
        # reached after a few parts and the rest silently run eager: each measured module gets a fresh compiler.
        torch._dynamo.reset()
        module = torch.compile(module, dynamic=False)

    def call():
        with torch.inference_mode():
            return module(*inputs)

    return call


def _ort_runner(module: nn.Module, inputs: list[torch.Tensor], settings: LatencySettings):
    import onnxruntime as ort

    names = [f"x{i}" for i in range(len(inputs))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(
            module.float(), tuple(inputs), buffer, dynamo=False, input_names=names, output_names=["y"], opset_version=17
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, inputs)}
    return lambda: session.run(None, feed)


def time_call(call: Callable[[], object], settings: LatencySettings) -> Timing:
    """Median milliseconds of `call` over `repeats` runs after `warmup`; a run repeats a fast call until it lasts
    `min_run_ms`, so the timer's resolution and one-off hiccups matter less."""
    for _ in range(max(settings.warmup, 1)):
        first = timeit.timeit(call, number=1)
    number = max(1, int(settings.min_run_ms / 1e3 / max(first, 1e-9)))
    runs = [t / number * 1e3 for t in timeit.repeat(call, repeat=settings.repeats, number=number)]
    median = statistics.median(runs)
    q = statistics.quantiles(runs, n=4)
    return Timing(ms=median, spread=(q[2] - q[0]) / median if median > 0 else 0.0, runs=len(runs), samples=runs)


def measure(module: nn.Module, shapes: Sequence[tuple[int, ...]], settings: LatencySettings) -> Timing:
    """Time `module` on inputs of `shapes` under `settings` (threads pinned while it runs)."""
    with pinned(settings):
        try:
            call = runner(module, shapes, settings)
        except ImportError as err:
            raise LatencyError(f"latency.backend={settings.backend}: {err}") from None
        return time_call(call, settings)


def measure_network(genome, settings: LatencySettings) -> Timing:
    """End-to-end latency of a genome's network (random weights: speed does not depend on them)."""
    from falsr.space.network import build_network

    h, w = settings.lr_size
    return measure(build_network(genome, init_std=None, scale=settings.scale), [(1, 1, h, w)], settings)


def warn_if_noisy(timings: Sequence[Timing], settings: LatencySettings, what: str) -> bool:
    """One line on stderr when the median spread is over `noisy_spread`: the numbers are not to be trusted."""
    if not timings:
        return False
    spread = statistics.median(t.spread for t in timings)
    if spread <= settings.noisy_spread:
        return False
    print(
        f"warning: latency of {what}: runs spread {spread:.0%} of the median (over {settings.noisy_spread:.0%}): "
        "the machine is too noisy for trustworthy numbers; measure again when it is quiet",
        file=sys.stderr,
    )
    return True
