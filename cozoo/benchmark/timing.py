"""Timing two functions interleaved, thread counts, subnormal flushing and the machine's
environment: what every suite of ``python -m cozoo.benchmark`` measures with."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List

import torch

#: torch's thread count at import (``threads=0`` means this).
DEFAULT_THREADS = torch.get_num_threads()


def _time_once(fn: Callable[[], object], inner: int) -> float:
    """Mean seconds per call of ``inner`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def interleaved(
    first: Callable[[], object],
    second: Callable[[], object],
    repeats: int,
    inner: int,
    inner_second: int | None = None,
    warmup: int = 3,
) -> Dict[str, float]:
    """Median milliseconds per call of two functions timed in alternation (A, B, A, B, ...),
    their spreads and the median of the per-pair ratios A/B. Each sample is the mean of
    ``inner`` calls of A (``inner_second`` calls of B, default ``inner``), after ``warmup``
    calls of each."""
    inner_second = inner if inner_second is None else inner_second
    for _ in range(warmup):
        first()
        second()
    a: List[float] = []
    b: List[float] = []
    for _ in range(repeats):
        a.append(_time_once(first, inner))
        b.append(_time_once(second, inner_second))
    ratios = sorted(x / y for x, y in zip(a, b))
    return {
        "a_ms": statistics.median(a) * 1e3,
        "b_ms": statistics.median(b) * 1e3,
        "a_spread": _spread(a),
        "b_spread": _spread(b),
        "ratio": statistics.median(ratios),
    }


def _spread(samples: List[float]) -> float:
    """Interquartile range over the median (0 for fewer than 2 samples)."""
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=4)
    return (q[2] - q[0]) / statistics.median(samples)


def resolve_threads(threads: int | None) -> int:
    """``0``/None: torch's default thread count (at import); else ``threads``."""
    return DEFAULT_THREADS if not threads else int(threads)


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def processor() -> str:
    """The processor's name, else the machine type (``x86_64``)."""
    return platform.processor() or platform.machine()


def flushes_denormals() -> bool:
    """Whether subnormal floats are flushed to zero right now."""
    tiny = torch.tensor([1e-39])  # a float32 subnormal
    return bool((tiny * 1.0 == 0).item())


@contextlib.contextmanager
def flushing_denormals(flush: bool) -> Iterator[None]:
    """Flush subnormal floats to zero (``flush``) or keep them for the block; the process's
    setting is restored afterwards.

    Random weights in eval mode (untrained BatchNorm statistics) shrink the activations layer by
    layer into subnormal numbers, on which the CPU is many times slower (CoX3D-L steps measured
    3x slower, for as long as the state held them). Trained weights do not do that; flushing
    makes the timings independent of the weight values, as the benchmark assumes.
    """
    before = flushes_denormals()
    if not torch.set_flush_denormal(flush) and flush:
        print("flush_denormal: this CPU cannot flush subnormal floats; timings may depend on them")
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def environment() -> Dict[str, Any]:
    """The machine and library versions a result was measured on (written beside the rows)."""
    return {
        "torch": torch.__version__,
        "processor": processor(),
        "cores": os.cpu_count(),
        "default_threads": DEFAULT_THREADS,
        "load_average": load_average(),
        "flush_denormal": flushes_denormals(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
