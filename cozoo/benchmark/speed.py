"""The ``speed`` suite: a registered model's regular clip forward against its continual step.

``bench_speed`` times the clip forward (the regular network, X3D-M etc., with the same weights)
against ``forward_step`` as interleaved pairs at the model's registered input (``info.input``:
video ``(B, 3, T, H, W)``, skeleton ``(B, C, T, V, M)``, features ``(B, D, T)``; the steps drop
``T``), per batch size and thread count: ms per clip and per step, the measured speed-up, the
FLOPs reduction and the share of it realised, memory per stream (state; weights + input + state
+ peak allocation of one call), the time to warm up the state, steps/s of a continual evaluation
over a long stream, optionally what ``torch.compile`` adds, and the published figures (weights'
meta, the clip models' from ``meta.baseline``; empty for a model without weights).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from cozoo import co

from .compiling import COMPILE_COLUMNS, bench_compiled
from .memory import peak_allocated_bytes, state_bytes
from .registry import (
    builder_kwargs,
    gmacs,
    input_label,
    model_input,
    published,
    published_against,
    weights_meta,
)
from .results import print_speed_table, write_results
from .timing import (
    DEFAULT_THREADS,
    flushes_denormals,
    interleaved,
    load_average,
    processor,
    resolve_threads,
)

#: The benchmark's own targets: a step at least this many times faster than the regular
#: network's clip forward with the same weights (1 thread and the default threads, batch 1
#: and 8), or ``{batch: target}`` where the target depends on the batch size (1 thread).
SPEEDUP_TARGETS: Dict[str, Union[float, Dict[int, float]]] = {
    "cox3d_s": 9.0,
    "cox3d_m": 12.0,
    "cox3d_l": 13.0,
    # "name@other": the step of `name` against the clip forward of the registered `other`
    "costgcn_mod": 120.0,  # its own clip form is ST-GCN* (MACs ratio 237x)
    "costgcn_mod@stgcn": 60.0,  # ST-GCN, the original network (MACs ratio 107x)
    # online detection: the continual step against OadTR recomputing its 64-step window
    "cooadtr_b1@oadtr": {1: 20.0, 32: 100.0},  # MACs ratio 236x; batch 1 is weight-bound
    "cooadtr_b1@oadtr_b1": {1: 8.0},
    "cooadtr_b2@oadtr": {1: 4.0, 32: 4.0},
}


def speedup_target(name: str, batch: int) -> Optional[float]:
    """The target of row ``name`` (``"model@other"``) at ``batch``, or None."""
    target = SPEEDUP_TARGETS.get(name)
    return target.get(batch) if isinstance(target, dict) else target


Step = Callable[[], object]


def bench_speed(
    name: str,
    *,
    pool_size: Optional[int] = 64,
    batch: int = 1,
    threads: int = 1,
    repeats: int = 5,
    frames: Optional[int] = None,
    crop: Optional[int] = None,
    step_inner: int = 16,
    warmup: int = 1,
    video_frames: int = 0,
    memory: bool = True,
    compile: bool = False,
    weights: Optional[str] = None,
    fuse_bn: bool = False,
    against: Optional[str] = None,
) -> dict:
    """One row of the speed table: ``name``'s regular clip forward ``(batch, *clip)`` against
    its continual step ``(batch, *step)``, same module and weights, timed as interleaved pairs
    (clip, ``step_inner`` steps, clip, ...).

    The input is the registered one (``info.input``) unless ``frames`` (any kind) / ``crop``
    (video only) are given; ``pool_size`` is passed to builders that take it (the row's
    ``pool_size`` is None for the others). The continual model is warmed up (``warm_up``,
    timed) before the pairs, so every timed step is a steady-state step. A stream steps back to
    back, while a clip forward evicts the caches: ``step_inner`` is large enough that the first
    step after each clip does not dominate the step's sample. ``video_frames`` > 0 also runs a
    continual evaluation of a stream that long from a clean state (steps/s, warm-up included);
    ``compile`` times ``co.compile_step`` against the eager step and the compiled clip against
    the compiled step. ``weights`` (e.g. ``"DEFAULT"``) loads a checkpoint; by default the
    weights are random (the speed does not depend on their values). ``fuse_bn`` folds the
    BatchNorms into the convolutions (``co.fuse_batch_norm``) of the one model both sides run.
    ``against`` times the clip forward of another registered model with the same input instead
    (``"stgcn"``: CoST-GCN*'s step against the original ST-GCN on the same 300 frames); the row
    is named ``"name@against"``.
    """
    from cozoo.models import create_model, get_model_info

    threads = resolve_threads(threads)
    torch.set_num_threads(threads)
    spec = model_input(name, frames=frames, crop=crop)
    kwargs = builder_kwargs(name, pool_size)
    torch.manual_seed(0)
    model = create_model(name, weights=weights, **kwargs).eval()
    if fuse_bn:
        model = co.fuse_batch_norm(model, inplace=True)
    clip = torch.randn(batch, *spec.clip_shape)
    stream = torch.randn(4, batch, *spec.step_shape)  # frames cycled through by the steps
    baseline = model
    if against is not None:
        baseline = create_model(against, **builder_kwargs(against, pool_size)).eval()
        if fuse_bn:
            baseline = co.fuse_batch_norm(baseline, inplace=True)
    forward, step = _callers(model, baseline, clip, stream)
    label = name if against is None else f"{name}@{against}"
    row: Dict[str, Any] = {
        "model": label,
        "pool_size": kwargs.get("pool_size"),
        "input": input_label(spec),
        "published_input": spec.clip_shape == get_model_info(name).input.clip_shape,
        "batch": batch,
        "threads": threads,
        "fuse_bn": bool(fuse_bn),
        "load_before": load_average(),
    }
    with torch.inference_mode():
        row.update(_warm_up(model, stream))
        row.update(_timed_pairs(label, forward, step, repeats, step_inner, warmup, batch))
        if batch > 1:
            row.update(_against_batch1(model, stream, step, repeats, step_inner, warmup))
        row.update(gmacs(name, kwargs, clip.shape))
        if against is not None:
            clip_kwargs = builder_kwargs(against, pool_size)
            row["clip_gmacs"] = gmacs(against, clip_kwargs, clip.shape)["clip_gmacs"]
        row["flops_reduction"] = row["clip_gmacs"] / row["step_gmacs"]
        row["realised"] = row["speedup"] / row["flops_reduction"]
        row.update(_memory(model, clip, stream, forward, step, memory))
        row.update(dict.fromkeys(COMPILE_COLUMNS))
        if compile:
            row.update(bench_compiled(model, clip, stream, step, repeats, step_inner))
        row.update(_long_stream(model, step, int(video_frames)))
    if against is None:
        row.update(published(weights_meta(name), kwargs))
    else:
        row.update(published_against(weights_meta(name), kwargs, against))
    row["load_after"] = load_average()
    return row


def _callers(
    model: nn.Module, baseline: nn.Module, clip: torch.Tensor, stream: torch.Tensor
) -> Tuple[Step, Step]:
    """The timed calls: ``baseline``'s clip forward on ``clip`` ``(B, *clip)``, and a step of
    ``model`` on the next frame of ``stream`` ``(N, B, *step)``, cycled."""
    counter = iter(range(1 << 62))

    def forward() -> object:
        return baseline(clip)

    def step() -> object:
        return model.forward_step(stream[next(counter) % len(stream)])

    return forward, step


def _warm_up(model: nn.Module, stream: torch.Tensor) -> Dict[str, Any]:
    """Fill the state from clean (``model.delay`` steps of ``stream.shape[1:]``), timed."""
    model.clean_state()
    start = time.perf_counter()
    model.warm_up(stream.shape[1:])
    return {"warmup_steps": int(model.delay), "warmup_s": time.perf_counter() - start}


def _timed_pairs(
    name: str, forward: Step, step: Step, repeats: int, inner: int, warmup: int, batch: int
) -> Dict[str, Any]:
    """Clip forward against ``inner`` steps, interleaved; the speed-up against its target."""
    r = interleaved(forward, step, repeats, inner=1, inner_second=inner, warmup=warmup)
    target = speedup_target(name, batch)
    return {
        "clip_ms": r["a_ms"],
        "clip_spread": r["a_spread"],
        "step_ms": r["b_ms"],
        "step_spread": r["b_spread"],
        "clip_ms_per_stream": r["a_ms"] / batch,
        "step_ms_per_stream": r["b_ms"] / batch,
        "speedup": r["ratio"],
        "target": target,
        "meets_target": None if target is None else bool(r["ratio"] >= target),
        "batch1_step_ms": None,
        "stream_frame_gain": None,
    }


def _against_batch1(
    model: nn.Module,
    stream: torch.Tensor,
    step: Step,
    repeats: int,
    inner: int,
    warmup: int,
) -> Dict[str, float]:
    """A step of ``model`` at batch B against a step of a copy at batch 1 (same weights, both
    warmed up), interleaved: ``stream_frame_gain`` = batch-1 ms / (batch-B ms / B)."""
    single = copy.deepcopy(model)
    single.clean_state()
    frame = stream[:1, :1].squeeze(0).clone()  # (1, *step)
    single.warm_up(frame.shape)
    batch = stream.shape[1]
    r = interleaved(step, lambda: single.forward_step(frame), repeats, inner=inner, warmup=warmup)
    return {"batch1_step_ms": r["b_ms"], "stream_frame_gain": batch / r["ratio"]}


def _memory(
    model: nn.Module,
    clip: torch.Tensor,
    stream: torch.Tensor,
    forward: Step,
    step: Step,
    measure: bool,
) -> Dict[str, Any]:
    """Weights and state; with ``measure``, memory per stream of a clip forward (weights +
    clip + peak allocation) and of a step (weights + state + frame + peak allocation)."""
    weights = sum(p.nbytes for p in model.parameters()) + sum(b.nbytes for b in model.buffers())
    state = state_bytes(model.get_state())
    batch = clip.shape[0]
    row = {"weights_mb": weights / 1e6, "state_mb_per_stream": state / batch / 1e6}
    if not measure:
        return {**row, "clip_memory_mb_per_stream": None, "step_memory_mb_per_stream": None}
    clip_peak = peak_allocated_bytes(forward)
    step_peak = peak_allocated_bytes(step)
    frame_bytes = stream[0].nbytes
    row["clip_memory_mb_per_stream"] = (weights + clip.nbytes + clip_peak) / batch / 1e6
    row["step_memory_mb_per_stream"] = (weights + state + frame_bytes + step_peak) / batch / 1e6
    return row


def _long_stream(model: nn.Module, step: Step, frames: int) -> Dict[str, Any]:
    """Steps/s of a continual evaluation over ``frames`` frames from a clean state (warm-up
    included); None for 0 frames."""
    row: Dict[str, Any] = {"video_frames": frames, "video_steps_per_s": None}
    if frames > 0:
        model.clean_state()
        start = time.perf_counter()
        for _ in range(frames):
            step()
        row["video_steps_per_s"] = frames / (time.perf_counter() - start)
    return row


def run_speed(cfg: Any, stem: str | None = None) -> List[dict]:
    """The ``speed`` suite: ``bench_speed`` for every model x batch size x thread count; with
    ``cfg.save`` the rows so far are written after each row (``write_results``)."""
    models = [cfg.models] if isinstance(cfg.models, str) else list(cfg.models)
    threads = as_list(cfg.threads, [1])
    repeats = cfg.repeats if cfg.repeats is not None else 5
    load_before = load_average()
    rows: List[dict] = []
    stem = stem or f"speed_{time.strftime('%Y%m%d-%H%M%S')}"
    for entry in models:
        name, _, against = str(entry).partition("@")
        for batch in as_list(cfg.batch_sizes, [1]):
            for n in threads:
                rows.append(
                    bench_speed(
                        name,
                        pool_size=cfg.pool_size,
                        batch=int(batch),
                        threads=n,
                        repeats=int(repeats),
                        frames=cfg.frames,
                        crop=cfg.crop,
                        step_inner=int(cfg.step_inner),
                        warmup=int(cfg.warmup),
                        video_frames=int(cfg.video_frames),
                        memory=bool(cfg.memory),
                        compile=bool(cfg.compile),
                        weights=cfg.get("weights"),
                        fuse_bn=bool(cfg.get("fuse_bn", False)),
                        against=against or None,
                    )
                )
                print(_progress(rows[-1]), flush=True)
                if cfg.save:  # after every row: a long run keeps what it measured
                    write_results(rows, "speed", cfg.results_dir, cfg, stem=stem)
    print()
    _print_conditions(rows, cfg, repeats, load_before)
    print_speed_table(rows)
    return rows


def _print_conditions(rows: List[dict], cfg: Any, repeats: int, load_before: float) -> None:
    """The machine, its load, how the rows were timed and what the columns mean."""
    print(
        f"torch {torch.__version__}, {processor()}, "
        f"{os.cpu_count()} cores, default threads {DEFAULT_THREADS}; load average (1 min) "
        f"{load_before:.2f} before, {load_average():.2f} after "
        f"(per row: {min(r['load_before'] for r in rows):.2f}.."
        f"{max(r['load_after'] for r in rows):.2f}); {repeats} interleaved pairs (clip, "
        f"{cfg.step_inner} steps) per row; medians, ± = interquartile range / median; "
        f"subnormal floats {'flushed to zero' if flushes_denormals() else 'kept'}"
    )
    print(
        "speedup = median over pairs of clip ms / step ms (same weights); FLOPs red. = our "
        "clip MACs / mean step MACs; realised = speedup / FLOPs red.; mem = weights + input + "
        "state + peak allocation of one call, per stream; BatchNorm "
        + ("folded into the convolutions of both sides" if cfg.get("fuse_bn") else "not folded")
    )


def _progress(r: dict) -> str:
    return (
        f"  {r['model']} B={r['batch']} threads={r['threads']}: clip {r['clip_ms']:.1f} ms, "
        f"step {r['step_ms']:.2f} ms, {r['speedup']:.1f}x (load {r['load_after']:.2f})"
    )


def as_list(value: Any, default: List[int]) -> List[int]:
    """A config value (None, an int, a list) as a list of ints (``default`` for None)."""
    if value is None:
        return list(default)
    if isinstance(value, (int, str)):
        return [int(value)]
    return [int(v) for v in value]
