"""What ``torch.compile`` adds: ``co.compile_step`` against the eager step, and a compiled clip
forward against the compiled step (the speed suite's ``compile=true``, the core suite's
``core.compile=true``)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict

import torch
from torch import nn

from cozoo import co

from .timing import interleaved

COMPILE_COLUMNS = (
    "compile_s",
    "compiled_step_ms",
    "compile_speedup",
    "compiled_clip_ms",
    "compiled_speedup",
    "compile_error",
)


def compiled_past_warm_up(model: nn.Module, stream: torch.Tensor) -> co.CompiledStep:
    """``co.compile_step(model)`` stepped on the frames of ``stream`` ``(N, B, *step)``, cycled,
    through its eager warm-up and once through every phase of its cycle (each compiles), so
    that the next step runs compiled code."""
    fast = co.compile_step(model, stream[0])
    frames = iter(range(1 << 62))
    while fast.warming_up:
        fast(stream[next(frames) % len(stream)])
    for _ in range(fast.period):
        fast(stream[next(frames) % len(stream)])
    return fast


def bench_compiled(
    model: nn.Module,
    clip: torch.Tensor,
    stream: torch.Tensor,
    eager_step: Callable[[], object],
    repeats: int,
    inner: int,
) -> Dict[str, Any]:
    """``co.compile_step`` against the eager step (what compiling adds), and the compiled clip
    forward (same Inductor options: frozen weights, C++ wrapper) against the compiled step.

    ``clip``: ``(B, *clip)``; ``stream``: ``(N, B, *step)`` frames, cycled. ``compile_s``
    includes the eager warm-up steps before the steady step is compiled; a failure is reported
    in ``compile_error`` instead of aborting the table."""
    try:
        start = time.perf_counter()
        fast = compiled_past_warm_up(model, stream)
        compile_s = time.perf_counter() - start
        counter = iter(range(1 << 62))

        def compiled_step() -> None:
            fast(stream[next(counter) % len(stream)])

        vs_eager = interleaved(compiled_step, eager_step, max(repeats, 3), inner=inner, warmup=1)
        with co.compiled.inductor_options(freeze=True, cpp_wrapper=True):
            compiled_forward = torch.compile(model, dynamic=False)
            compiled_forward(clip)
            clip_vs_step = interleaved(
                lambda: compiled_forward(clip),
                compiled_step,
                max(repeats, 3),
                inner=1,
                inner_second=inner,
                warmup=1,
            )
    except Exception as error:  # noqa: BLE001 - report, do not abort the table
        return {"compile_error": f"{type(error).__name__}: {error}"[:300]}
    return {
        "compile_s": compile_s,
        "compiled_step_ms": vs_eager["a_ms"],
        "compile_speedup": 1 / vs_eager["ratio"],
        "compiled_clip_ms": clip_vs_step["a_ms"],
        "compiled_speedup": clip_vs_step["ratio"],
    }
