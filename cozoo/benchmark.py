"""Benchmarks, measured side by side in one process:
``python -m cozoo.benchmark [speed|core|flops] [KEY=VALUE ...]`` (a Hydra app; config
``cozoo/recipes/benchmark.yaml``; ``core`` is short for ``suite=core``)::

    python -m cozoo.benchmark                                   # speed table of the zoo
    python -m cozoo.benchmark suite=speed models=[cox3d_m] batch_sizes=[1,8] threads=[1,0] \
        repeats=10 save=true                                    # 0 threads: torch's default
    python -m cozoo.benchmark core
    python -m cozoo.benchmark flops pattern='cox3d_*'

``speed`` (``bench_speed``) times each zoo model's regular clip forward (the regular network,
X3D-M etc., with the same weights) against its continual ``forward_step`` as interleaved pairs
at the published input, per batch size and thread count, and prints ms per clip and per step,
the measured speed-up (targets: CoX3D-S 9x, CoX3D-M 12x, CoX3D-L 13x), the FLOPs reduction and
the share of it realised, memory per stream (state; weights + input + state + peak allocation
of one call), the time to warm up the state, steps/s of a continual evaluation over a long video,
optionally what ``torch.compile`` adds (``compile=true``, minutes per model: ``co.compile_step``
against the eager step, and the compiled clip against the compiled step), and the published
figures (weights' meta, the clip models' from ``meta.baseline``). ``save=true``
writes the rows as CSV and JSON under ``results_dir`` (``results/``).

``flops`` prints the model zoo's params and MACs per clip and per step next to the published
values (see ``run_flops``).

``core`` measures the continual layer library against the raw tensor work it has to do:

- **step**: ``forward_step`` of a stack of ``Conv3d(C, C, 3, padding=(0, 1, 1))`` + ReLU layers on
  one ``(1, C, H, W)`` frame, against the minimum tensor work one new frame needs (per layer: one
  2-D convolution over the 3 tapped frames stacked as channels, and the ReLU), and against a
  ``conv3d`` over the 3-frame window (what a naive step computes);
- **chunk**: ``forward_steps`` over ``T`` frames against ``forward`` over the same frames, for a
  conv stack and for a conv + 64-wide average pool stack.

Each pair is timed interleaved (A, B, A, B, ...); the tables report medians, the spread
(interquartile range over the median) and the machine's load average.

Subnormal floats are flushed to zero (``flush_denormal=true``, ``torch.set_flush_denormal``) for
the whole run: random weights in eval mode (untrained BatchNorm statistics) shrink the
activations layer by layer into subnormal numbers, on which the CPU is many times slower (CoX3D-L
steps measured 3x slower, for as long as the state held them). Trained weights do not do that;
the flag makes the timings independent of the weight values, as the benchmark assumes.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Sequence

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from cozoo import co


def _time_once(fn: Callable[[], object], inner: int) -> float:
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


def conv_stack(layers: int, channels: int) -> co.Sequential:
    """``layers`` x (Conv3d(C, C, 3, padding=(0, 1, 1)) + ReLU), in eval mode."""
    modules: List[nn.Module] = []
    for _ in range(layers):
        modules += [co.Conv3d(channels, channels, 3, padding=(0, 1, 1)), nn.ReLU()]
    return co.Sequential(*modules).eval()


def bench_step(layers: int, channels: int, size: int, repeats: int) -> List[dict]:
    net = conv_stack(layers, channels)
    frame = torch.randn(1, channels, size, size)
    for _ in range(3):
        net.forward_step(frame)
    convs = [m for m in net if isinstance(m, co.Conv3d)]
    merged = [(m.weight.reshape(channels, channels * 3, 3, 3), m.bias) for m in convs]
    taps = torch.randn(1, channels * 3, size, size)
    window = torch.randn(1, channels, 3, size, size)

    def raw_2d() -> None:
        for weight, bias in merged:
            F.relu(F.conv2d(taps, weight, bias, padding=1))

    def raw_3d() -> None:
        for m in convs:
            F.relu(F.conv3d(window, m.weight, m.bias, padding=(0, 1, 1)))

    step = lambda: net.forward_step(frame)  # noqa: E731
    name = f"{layers}x Conv3d({channels},{channels},3)+ReLU, 1x{channels}x{size}x{size} frame"
    rows = []
    for label, raw, target in (
        ("forward_step vs raw 2-D tap work", raw_2d, 1.5),
        ("forward_step vs raw conv3d on the window", raw_3d, None),
    ):
        r = interleaved(step, raw, repeats, inner=5)
        rows.append({"benchmark": "step", "model": name, "pair": label, "target": target, **r})
    return rows


def bench_compile(layers: int, channels: int, size: int, repeats: int) -> List[dict]:
    """``co.compile_step`` against the eager ``forward_step``."""
    net = conv_stack(layers, channels)
    frame = torch.randn(1, channels, size, size)
    compiled = compiled_past_warm_up(net, frame[None])
    for _ in range(3):
        net.forward_step(frame)

    def compiled_step() -> None:
        compiled(frame)

    r = interleaved(compiled_step, lambda: net.forward_step(frame), repeats, inner=5)
    name = f"{layers}x Conv3d({channels},{channels},3)+ReLU, 1x{channels}x{size}x{size} frame"
    return [
        {
            "benchmark": "compile",
            "model": name,
            "pair": "compiled step vs eager forward_step",
            "target": None,
            **r,
        }
    ]


def bench_chunk(frames: int, channels: int, size: int, repeats: int) -> List[dict]:
    from cozoo.co.pooling import AvgPool3d

    nets = {
        f"4x Conv3d({channels},{channels},3)+ReLU": conv_stack(4, channels),
        f"Conv3d({channels},{channels},3) + AvgPool3d((64,1,1), stride 1)": co.Sequential(
            co.Conv3d(channels, channels, 3, padding=(0, 1, 1)),
            nn.ReLU(),
            AvgPool3d((64, 1, 1), stride=1),
        ).eval(),
    }
    clip = torch.randn(1, channels, frames, size, size)
    rows = []
    for name, net in nets.items():

        def steps(net=net) -> None:
            net.clean_state()
            net.forward_steps(clip, pad_end=True)

        r = interleaved(steps, lambda net=net: net(clip), repeats, inner=1)
        rows.append(
            {
                "benchmark": "chunk",
                "model": f"{name}, T={frames}",
                "pair": "forward_steps vs forward",
                "target": 2.0,
                **r,
            }
        )
    return rows


def print_table(rows: List[dict]) -> None:
    header = (
        f"{'benchmark':9} {'model':58} {'pair':42} {'A ms':>9} {'B ms':>9} {'A/B':>6} "
        f"{'target':>7} spread(A,B)"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = "-" if r["target"] is None else f"<={r['target']:g}"
        print(
            f"{r['benchmark']:9} {r['model'][:58]:58} {r['pair'][:42]:42} {r['a_ms']:9.3f} "
            f"{r['b_ms']:9.3f} {r['ratio']:6.2f} {target:>7} "
            f"{r['a_spread']:.0%},{r['b_spread']:.0%}"
        )


def run_core(args: Any) -> List[dict]:
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with torch.inference_mode():
        rows = bench_step(args.layers, args.channels, args.size, args.repeats)
        rows += bench_chunk(args.frames, args.channels, args.size, max(args.repeats // 3, 5))
        if args.compile:
            rows += bench_compile(args.layers, args.channels, args.size, args.repeats)
    load_after = os.getloadavg()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average (1 min) {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    print_table(rows)
    return rows


def run_flops(args: Any) -> List[dict]:
    """Params and MACs of every zoo model at its published input, next to the published values.

    Counted with ptflops on the meta device (shapes only, no arithmetic), so the whole table takes
    seconds. ``step`` is what a step computes; ``step (pub. conv.)`` counts each wrapped BN/ReLU
    twice, the convention behind the published per-step figures.
    """
    from cozoo.co.flops import complexity
    from cozoo.models import create_model, get_model_weights, list_models

    rows = []
    for name in list_models(args.pattern):
        weights = get_model_weights(name).DEFAULT
        protocol, meta = weights.transforms, weights.meta
        pool = min(v.kwargs["pool_size"] for v in meta.variants)
        shape = (1,) + tuple(meta.macs_per_clip.input)
        model = create_model(name, pool_size=pool).eval().to("meta")
        ours = complexity(model, shape)
        published_convention = complexity(model, shape, convention="continual-inference")
        rows.append(
            {
                "model": name,
                "input": "x".join(str(n) for n in shape[1:]),
                "frames_x_rate": f"{protocol.frames}x{protocol.sampling_rate}",
                "params": ours.params,
                "params_published": meta.num_params,
                "clip_gmacs": ours.clip_macs / 1e9,
                "clip_gmacs_published": meta.macs_per_clip.value,
                "step_gmacs": ours.step_macs / 1e9,
                "step_gmacs_mean": ours.step_macs_mean / 1e9,
                "step_gmacs_published_convention": published_convention.step_macs / 1e9,
                "step_gmacs_published": meta.macs_per_step.value,
                "reduction": ours.clip_macs / ours.step_macs,
                "reduction_published": meta.macs_per_clip.value / meta.macs_per_step.value,
            }
        )
    header = (
        f"{'model':8} {'input':13} {'params':>10} {'(pub.)':>10} {'clip':>7} {'(pub.)':>7} "
        f"{'step':>6} {'mean':>6} {'pub.conv':>8} {'(pub.)':>6} {'reduct.':>7} {'(pub.)':>6}"
    )
    print("GMACs (multiply-accumulates) per sample, ptflops module hooks, functional ops off")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:8} {r['input']:13} {r['params']:10d} {r['params_published']:10d} "
            f"{r['clip_gmacs']:7.3f} {r['clip_gmacs_published']:7.2f} {r['step_gmacs']:6.3f} "
            f"{r['step_gmacs_mean']:6.3f} {r['step_gmacs_published_convention']:8.3f} "
            f"{r['step_gmacs_published']:6.2f} {r['reduction']:6.1f}x "
            f"{r['reduction_published']:5.1f}x"
        )
    return rows


# --------------------------------------------------------------------------------------------
# speed: the model zoo, regular clip forward vs continual step
# --------------------------------------------------------------------------------------------

#: Targets of the issue: a step at least this many times faster than the regular network's clip
#: forward with the same weights (1 thread and the default threads, batch 1 and 8).
SPEEDUP_TARGETS: Dict[str, float] = {"cox3d_s": 9.0, "cox3d_m": 12.0, "cox3d_l": 13.0}

_DEFAULT_THREADS = torch.get_num_threads()


def resolve_threads(threads: int | None) -> int:
    """``0``/None: torch's default thread count (at import); else ``threads``."""
    return _DEFAULT_THREADS if not threads else int(threads)


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def state_bytes(state: object) -> int:
    """Bytes of the distinct storages behind the tensors of a (nested) state."""
    from cozoo.co.export import flatten_state

    tensors, _ = flatten_state(state)
    storages = {}
    for t in tensors:
        storage = t.untyped_storage()
        storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
    return sum(storages.values())


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ logging included) for the duration of the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Peak of the CPU memory allocated while ``fn()`` runs, above what was allocated before.

    Replays the allocations and frees recorded by ``torch.profiler(profile_memory=True)`` in
    time order (an operator's own allocations count at its start).
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr():  # kineto logs its start/stop (and the missing GPU) to fd 2
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        if event.name == "[memory]":
            current += event.cpu_memory_usage
        else:
            current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def _gmacs(name: str, pool_size: int, shape: Sequence[int]) -> Dict[str, float]:
    """Our MAC counts (per sample, GMACs) of a clip and of a step (peak and mean)."""
    from cozoo.co.flops import complexity
    from cozoo.models import create_model

    try:
        model = create_model(name, pool_size=pool_size).eval().to("meta")
        c = complexity(model, (1,) + tuple(shape[1:]))
    except ImportError:  # ptflops missing
        nan = float("nan")
        return {"clip_gmacs": nan, "step_gmacs": nan, "step_gmacs_peak": nan}
    return {
        "clip_gmacs": c.clip_macs / 1e9,
        "step_gmacs": c.step_macs_mean / 1e9,
        "step_gmacs_peak": c.step_macs / 1e9,
    }


def _value(result: Any) -> Any:
    return None if result is None else result.value


def _published(pool_size: int, meta: Any) -> Dict[str, Any]:
    """The published figures of a model at ``pool_size`` (the weights' meta)."""
    base = meta.baseline
    clip_cpu = None if base is None else _value(base.find("CPU throughput"))
    step_cpu = _value(meta.find("CPU throughput", pool_size=pool_size))
    clip_gmacs, step_gmacs = meta.macs_per_clip.value, meta.macs_per_step.value
    return {
        "published_top1": _value(meta.find("top-1 accuracy", pool_size=pool_size)),
        "published_clip_model": None if base is None else base.display_name,
        "published_clip_top1": None if base is None else _value(base.find("top-1 accuracy")),
        "published_clip_gmacs": clip_gmacs,
        "published_step_gmacs": step_gmacs,
        "published_reduction": clip_gmacs / step_gmacs,
        "published_clip_memory_mb": None if base is None else _value(base.find("memory")),
        "published_step_memory_mb": _value(meta.find("memory", pool_size=pool_size)),
        "published_cpu_speedup": None
        if clip_cpu is None or step_cpu is None
        else step_cpu / clip_cpu,
    }


def bench_speed(
    name: str,
    *,
    pool_size: int = 64,
    batch: int = 1,
    threads: int = 1,
    repeats: int = 5,
    frames: int | None = None,
    crop: int | None = None,
    step_inner: int = 16,
    warmup: int = 1,
    video_frames: int = 0,
    memory: bool = True,
    compile: bool = False,
    weights: str | None = None,
    fuse_bn: bool = False,
) -> dict:
    """One row of the speed table: ``name``'s regular clip forward against its continual step,
    same module and weights, timed as interleaved pairs (clip, ``step_inner`` steps, clip, ...).

    The input is the published one (``meta.macs_per_clip.input``) unless ``frames`` /
    ``crop`` are given. The continual model is warmed up (``warm_up``, timed) before the pairs,
    so every timed step is a steady-state step. A stream steps back to back, while a clip
    forward evicts the caches: ``step_inner`` is large enough that the first step after each
    clip does not dominate the step's sample. ``video_frames`` > 0 also runs a continual
    evaluation of a video that long from a clean state (steps/s, warm-up included);
    ``compile`` times ``co.compile_step`` against the eager step and the compiled clip against
    the compiled step (both with Inductor's frozen weights and C++ wrapper).
    ``weights`` (e.g. ``"DEFAULT"``) loads a checkpoint; by default the weights are random
    (the speed does not depend on their values). ``fuse_bn`` folds the BatchNorms into the
    convolutions (``co.fuse_batch_norm``) of the one model that both sides run.
    """
    from cozoo.models import create_model, get_model_weights

    threads = resolve_threads(threads)
    torch.set_num_threads(threads)
    meta = get_model_weights(name).DEFAULT.meta
    _, t_pub, h_pub, w_pub = meta.macs_per_clip.input
    t = int(frames or t_pub)
    h, w = (int(crop), int(crop)) if crop else (int(h_pub), int(w_pub))
    shape = (batch, 3, t, h, w)
    torch.manual_seed(0)
    model = create_model(name, pool_size=pool_size, weights=weights).eval()
    if fuse_bn:
        model = co.fuse_batch_norm(model, inplace=True)
    clip = torch.randn(shape)
    stream = torch.randn(4, batch, 3, h, w)  # frames cycled through by the steps
    counter = iter(range(1 << 62))

    def step() -> object:
        return model.forward_step(stream[next(counter) % len(stream)])

    def forward() -> object:
        return model(clip)

    row: Dict[str, Any] = {
        "model": name,
        "pool_size": pool_size,
        "input": f"{t}x{h}x{w}",
        "published_input": (t, h, w) == (t_pub, h_pub, w_pub),
        "batch": batch,
        "threads": threads,
        "fuse_bn": bool(fuse_bn),
        "load_before": load_average(),
    }
    with torch.inference_mode():
        model.clean_state()
        start = time.perf_counter()
        model.warm_up(stream.shape[1:])
        row["warmup_steps"] = int(model.delay)
        row["warmup_s"] = time.perf_counter() - start

        r = interleaved(forward, step, repeats, inner=1, inner_second=step_inner, warmup=warmup)
        row.update(
            clip_ms=r["a_ms"],
            clip_spread=r["a_spread"],
            step_ms=r["b_ms"],
            step_spread=r["b_spread"],
            clip_ms_per_stream=r["a_ms"] / batch,
            step_ms_per_stream=r["b_ms"] / batch,
            speedup=r["ratio"],
        )
        target = SPEEDUP_TARGETS.get(name)
        row["target"] = target
        row["meets_target"] = None if target is None else bool(r["ratio"] >= target)
        row["batch1_step_ms"] = row["stream_frame_gain"] = None
        if batch > 1:
            row.update(_against_batch1(model, stream, step, repeats, step_inner, warmup))
        row.update(_gmacs(name, pool_size, shape))
        row["flops_reduction"] = row["clip_gmacs"] / row["step_gmacs"]
        row["realised"] = row["speedup"] / row["flops_reduction"]

        weights = sum(p.nbytes for p in model.parameters()) + sum(b.nbytes for b in model.buffers())
        state = state_bytes(model.get_state())
        row["weights_mb"] = weights / 1e6
        row["state_mb_per_stream"] = state / batch / 1e6
        if memory:
            clip_peak = peak_allocated_bytes(forward)
            step_peak = peak_allocated_bytes(step)
            frame_bytes = stream[0].nbytes
            row["clip_memory_mb_per_stream"] = (weights + clip.nbytes + clip_peak) / batch / 1e6
            row["step_memory_mb_per_stream"] = (
                (weights + state + frame_bytes + step_peak) / batch / 1e6
            )
        else:
            row["clip_memory_mb_per_stream"] = row["step_memory_mb_per_stream"] = None

        row.update(dict.fromkeys(COMPILE_COLUMNS))
        if compile:
            row.update(_bench_compiled(model, clip, stream, step, repeats, step_inner))
        row["video_frames"] = int(video_frames)
        row["video_steps_per_s"] = None
        if video_frames > 0:
            model.clean_state()
            start = time.perf_counter()
            for _ in range(video_frames):
                step()
            row["video_steps_per_s"] = video_frames / (time.perf_counter() - start)

    row.update(_published(pool_size, meta))
    row["load_after"] = load_average()
    return row


def _against_batch1(
    model: nn.Module,
    stream: torch.Tensor,
    step: Callable,
    repeats: int,
    inner: int,
    warmup: int,
) -> Dict[str, float]:
    """A step of ``model`` at batch B against a step of a copy at batch 1 (same weights, both
    warmed up), interleaved: ``stream_frame_gain`` = batch-1 ms / (batch-B ms / B)."""
    single = copy.deepcopy(model)
    single.clean_state()
    frame = stream[:1, :1].squeeze(0).clone()
    single.warm_up(frame.shape)
    batch = stream.shape[1]
    r = interleaved(step, lambda: single.forward_step(frame), repeats, inner=inner, warmup=warmup)
    return {"batch1_step_ms": r["b_ms"], "stream_frame_gain": batch / r["ratio"]}


COMPILE_COLUMNS = (
    "compile_s",
    "compiled_step_ms",
    "compile_speedup",
    "compiled_clip_ms",
    "compiled_speedup",
    "compile_error",
)


def compiled_past_warm_up(model: nn.Module, stream: torch.Tensor) -> co.CompiledStep:
    """``co.compile_step(model)`` stepped on the frames of ``stream`` ``(N, B, C, *S)``, cycled,
    through its eager warm-up and once through every phase of its cycle (each compiles), so
    that the next step runs compiled code."""
    fast = co.compile_step(model, stream[0])
    frames = iter(range(1 << 62))
    while fast.warming_up:
        fast(stream[next(frames) % len(stream)])
    for _ in range(fast.period):
        fast(stream[next(frames) % len(stream)])
    return fast


def _bench_compiled(
    model: nn.Module,
    clip: torch.Tensor,
    stream: torch.Tensor,
    eager_step: Callable,
    repeats: int,
    inner: int,
) -> Dict[str, Any]:
    """``co.compile_step`` against the eager step (what compiling adds), and the compiled clip
    forward (same Inductor options: frozen weights, C++ wrapper) against the compiled step.
    ``compile_s`` includes the eager warm-up steps before the steady step is compiled."""
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


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec`` + ``suffix``; "-" for None/NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec) + suffix


def print_speed_table(rows: List[dict]) -> None:
    """The speed table, the memory/stream table and the published figures."""
    header = (
        f"{'model':8} {'P':>3} {'input':11} {'B':>2} {'thr':>3} {'clip ms':>9} {'±':>4} "
        f"{'step ms':>8} {'±':>4} {'ms/stream-frame':>15} {'speedup':>7} {'target':>6} "
        f"{'FLOPs red.':>10} {'realised':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = "-" if r["target"] is None else f">={r['target']:g}"
        if r["meets_target"] is not None:
            target += " ok" if r["meets_target"] else " NO"
        print(
            f"{r['model']:8} {r['pool_size']:3d} {r['input']:11} {r['batch']:2d} "
            f"{r['threads']:3d} {r['clip_ms']:9.1f} {r['clip_spread']:4.0%} {r['step_ms']:8.2f} "
            f"{r['step_spread']:4.0%} {r['step_ms_per_stream']:15.2f} {r['speedup']:6.1f}x "
            f"{target:>6} {_fmt(r['flops_reduction'], '.1f', 'x'):>10} "
            f"{_fmt(r['realised'], '.0%'):>8}"
        )
    print()
    header = (
        f"{'model':8} {'B':>2} {'thr':>3} {'state MB/stream':>15} {'mem MB/stream clip':>18} "
        f"{'step':>6} {'(pub. clip':>10} {'step)':>6} {'warm-up s':>9} {'(steps)':>7} "
        f"{'video steps/s':>13} {'compile s':>9} {'compiled ms':>11} {'vs eager':>8} "
        f"{'compiled clip/step':>18}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        compiled = (
            f"{'failed':>9} {'':11} {'':8}"
            if r.get("compile_error")
            else f"{_fmt(r['compile_s'], '9.1f'):>9} {_fmt(r['compiled_step_ms'], '11.2f'):>11} "
            f"{_fmt(r['compile_speedup'], '.2f', 'x'):>8} "
            f"{_fmt(r.get('compiled_speedup'), '.1f', 'x'):>18}"
        )
        print(
            f"{r['model']:8} {r['batch']:2d} {r['threads']:3d} {r['state_mb_per_stream']:15.1f} "
            f"{_fmt(r['clip_memory_mb_per_stream'], '18.1f'):>18} "
            f"{_fmt(r['step_memory_mb_per_stream'], '6.1f'):>6} "
            f"{_fmt(r['published_clip_memory_mb'], '10.1f'):>10} "
            f"{_fmt(r['published_step_memory_mb'], '6.1f'):>6} {r['warmup_s']:9.2f} "
            f"{r['warmup_steps']:7d} {_fmt(r['video_steps_per_s'], '13.2f'):>13} {compiled}"
        )
    print()
    header = (
        f"{'model':8} {'P':>3} {'top-1':>6} {'clip model':>13} {'top-1':>6} {'GMACs clip':>10} "
        f"{'step':>5} {'reduction':>9} {'CPU speedup':>11}"
    )
    print("published (weights' meta: Hedegaard & Iosifidis, ECCV 2022, results figure)")
    print(header)
    print("-" * len(header))
    seen = set()
    for r in rows:
        if (r["model"], r["pool_size"]) in seen:
            continue
        seen.add((r["model"], r["pool_size"]))
        print(
            f"{r['model']:8} {r['pool_size']:3d} {_fmt(r['published_top1'], '6.2f'):>6} "
            f"{r['published_clip_model'] or '-':>13} {_fmt(r['published_clip_top1'], '6.2f'):>6} "
            f"{r['published_clip_gmacs']:10.2f} {r['published_step_gmacs']:5.2f} "
            f"{r['published_reduction']:8.1f}x {_fmt(r['published_cpu_speedup'], '.1f', 'x'):>11}"
        )
    for line in batch_summary(rows):
        print(line)


def batch_summary(rows: List[dict]) -> List[str]:
    """Per model and thread count: cost per stream-frame of a batch of B streams vs batch 1
    (interleaved with a batch-1 copy where measured, else against the batch-1 row)."""
    lines = []
    for r in rows:
        if r["batch"] == 1:
            continue
        if r.get("stream_frame_gain") is not None:
            lines.append(
                f"{r['model']}, {r['threads']} thread(s), interleaved: a step costs "
                f"{r['step_ms_per_stream']:.2f} ms per stream-frame at batch {r['batch']} vs "
                f"{r['batch1_step_ms']:.2f} ms at batch 1 ({_less(r['stream_frame_gain'])})"
            )
            continue
        base = [
            b
            for b in rows
            if b["batch"] == 1
            and (b["model"], b["threads"], b["input"]) == (r["model"], r["threads"], r["input"])
        ]
        if base:
            b = base[0]
            lines.append(
                f"{r['model']}, {r['threads']} thread(s): a step costs "
                f"{r['step_ms_per_stream']:.2f} ms per stream-frame at batch {r['batch']} vs "
                f"{b['step_ms_per_stream']:.2f} ms at batch 1 "
                f"({_less(b['step_ms_per_stream'] / r['step_ms_per_stream'])})"
            )
    if lines:
        lines.insert(0, "")
    return lines


def _less(gain: float) -> str:
    return f"{gain:.2f}x less" if gain >= 1 else f"{1 / gain:.2f}x MORE"


def environment() -> Dict[str, Any]:
    return {
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "default_threads": _DEFAULT_THREADS,
        "load_average": load_average(),
        "flush_denormal": _flushes_denormals(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _flushes_denormals() -> bool:
    """Whether subnormal floats are flushed to zero right now."""
    tiny = torch.tensor([1e-39])  # a float32 subnormal
    return bool((tiny * 1.0 == 0).item())


def run_speed(cfg: Any, stem: str | None = None) -> List[dict]:
    """The ``speed`` suite: ``bench_speed`` for every model x batch size x thread count; with
    ``cfg.save`` the rows so far are written after each row (``write_results``)."""
    models = [cfg.models] if isinstance(cfg.models, str) else list(cfg.models)
    threads = _as_list(cfg.threads, [1])
    repeats = cfg.repeats if cfg.repeats is not None else 5
    load_before = load_average()
    rows: List[dict] = []
    stem = stem or f"speed_{time.strftime('%Y%m%d-%H%M%S')}"
    for name in models:
        for batch in _as_list(cfg.batch_sizes, [1]):
            for n in threads:
                rows.append(
                    bench_speed(
                        name,
                        pool_size=int(cfg.pool_size),
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
                    )
                )
                print(_progress(rows[-1]), flush=True)
                if cfg.save:  # after every row: a long run keeps what it measured
                    write_results(rows, "speed", cfg.results_dir, cfg, stem=stem)
    print()
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, default threads {_DEFAULT_THREADS}; load average (1 min) "
        f"{load_before:.2f} before, {load_average():.2f} after "
        f"(per row: {min(r['load_before'] for r in rows):.2f}.."
        f"{max(r['load_after'] for r in rows):.2f}); {repeats} interleaved pairs (clip, "
        f"{cfg.step_inner} steps) per row; medians, ± = interquartile range / median; "
        f"subnormal floats {'flushed to zero' if _flushes_denormals() else 'kept'}"
    )
    print(
        "speedup = median over pairs of clip ms / step ms (same weights); FLOPs red. = our "
        "clip MACs / mean step MACs; realised = speedup / FLOPs red.; mem = weights + input + "
        "state + peak allocation of one call, per stream; BatchNorm "
        + ("folded into the convolutions of both sides" if cfg.get("fuse_bn") else "not folded")
    )
    print_speed_table(rows)
    return rows


def _progress(r: dict) -> str:
    return (
        f"  {r['model']} B={r['batch']} threads={r['threads']}: clip {r['clip_ms']:.1f} ms, "
        f"step {r['step_ms']:.2f} ms, {r['speedup']:.1f}x (load {r['load_after']:.2f})"
    )


def _as_list(value: Any, default: List[int]) -> List[int]:
    if value is None:
        return list(default)
    if isinstance(value, (int, str)):
        return [int(value)]
    return [int(v) for v in value]


# --------------------------------------------------------------------------------------------
# the command: python -m cozoo.benchmark [core|flops|speed] [KEY=VALUE ...]
# --------------------------------------------------------------------------------------------
SUITES = ("speed", "core", "flops")


def write_results(
    rows: List[dict],
    suite: str,
    results_dir: str | Path,
    cfg: Any = None,
    stem: str | None = None,
) -> Dict[str, Path]:
    """Write ``rows`` as ``{results_dir}/{stem}.csv`` and ``.json`` (default stem:
    ``{suite}_{time}``; the JSON also holds the environment and the config); returns the two
    paths."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / (stem or f"{suite}_{time.strftime('%Y%m%d-%H%M%S')}")
    config = None
    if cfg is not None:
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    paths = {"csv": stem.with_suffix(".csv"), "json": stem.with_suffix(".json")}
    paths["json"].write_text(
        json.dumps(
            {"suite": suite, "environment": environment(), "config": config, "rows": rows},
            indent=2,
            default=str,
        )
    )
    columns: List[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return paths


def run(cfg: Any) -> List[dict]:
    """Run the suite ``cfg.suite`` of a composed ``benchmark`` config; print, maybe save."""
    flushing = _flushes_denormals()
    flush = bool(cfg.get("flush_denormal", True))
    if not torch.set_flush_denormal(flush) and flush:
        print("flush_denormal: this CPU cannot flush subnormal floats; timings may depend on them")
    try:
        return _run_suite(cfg)
    finally:
        torch.set_flush_denormal(flushing)


def _run_suite(cfg: Any) -> List[dict]:
    suite = str(cfg.suite)
    stem = f"{suite}_{time.strftime('%Y%m%d-%H%M%S')}"
    if suite == "speed":
        rows = run_speed(cfg, stem)
    elif suite == "core":
        rows = []
        for n in _as_list(cfg.threads, [1]):
            args = SimpleNamespace(
                threads=resolve_threads(n),
                repeats=int(cfg.repeats if cfg.repeats is not None else 30),
                **{k: cfg.core[k] for k in ("layers", "channels", "size", "frames", "compile")},
            )
            rows += run_core(args)
    elif suite == "flops":
        rows = run_flops(SimpleNamespace(pattern=str(cfg.pattern)))
    else:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    if cfg.save:
        paths = write_results(rows, suite, cfg.results_dir, cfg, stem)
        print(f"wrote {paths['csv']} and {paths['json']}")
    if cfg.get("json"):
        path = Path(str(cfg.json))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2, default=str))
        print(f"wrote {path}")
    return rows


@hydra.main(config_path="recipes", config_name="benchmark", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def shorthand_argv(argv: Sequence[str]) -> List[str]:
    """``core`` / ``flops`` / ``speed`` as the first argument -> ``suite=...`` (Hydra takes
    no positional arguments)."""
    argv = list(argv)
    if argv and argv[0] in SUITES:
        argv[0] = f"suite={argv[0]}"
    return argv


def main(argv: List[str] | None = None) -> None:
    """``python -m cozoo.benchmark [core|flops|speed] [KEY=VALUE ...]`` (Hydra overrides)."""
    args = shorthand_argv(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *args]
    _hydra_main()


if __name__ == "__main__":
    main()
