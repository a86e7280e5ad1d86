"""Benchmarks, measured side by side in one process: ``python -m cozoo.benchmark core|flops``.

``flops`` prints the model zoo's params and MACs per clip and per step next to the published
values (see ``run_flops``).

``core`` measures the continual layer library against the raw tensor work it has to do:

- **step**: ``forward_step`` of a stack of ``Conv3d(C, C, 3, padding=(0, 1, 1))`` + ReLU layers on
  one ``(1, C, H, W)`` frame, against the minimum tensor work one new frame needs (per layer: one
  2-D convolution over the 3 tapped frames stacked as channels, and the ReLU), and against a
  ``conv3d`` over the 3-frame window (what a naive step computes);
- **chunk**: ``forward_steps`` over ``T`` frames against ``forward`` over the same frames, for a
  conv stack and for a conv + 64-wide average pool stack.

Each pair is timed interleaved (A, B, A, B, ...); the table reports medians, the spread
(interquartile range over the median) and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from cozoo import co


def _time_once(fn: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def interleaved(
    first: Callable[[], object], second: Callable[[], object], repeats: int, inner: int
) -> Dict[str, float]:
    """Median seconds per call of two functions timed in alternation, and their spreads."""
    for _ in range(3):
        first()
        second()
    a: List[float] = []
    b: List[float] = []
    for _ in range(repeats):
        a.append(_time_once(first, inner))
        b.append(_time_once(second, inner))
    ratios = sorted(x / y for x, y in zip(a, b))
    return {
        "a_ms": statistics.median(a) * 1e3,
        "b_ms": statistics.median(b) * 1e3,
        "a_spread": _spread(a),
        "b_spread": _spread(b),
        "ratio": statistics.median(ratios),
    }


def _spread(samples: List[float]) -> float:
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
    """``torch.compile`` of the pure step (``StepFunction``) against the eager ``forward_step``."""
    from cozoo.co.export import StepFunction, initial_state

    net = conv_stack(layers, channels)
    frame = torch.randn(1, channels, size, size)
    compiled = torch.compile(StepFunction(net, frame).eval())
    state = initial_state(net, frame)
    for _ in range(3):
        _, _, *state = compiled(frame, *state)
        net.forward_step(frame)

    def compiled_step() -> None:
        nonlocal state
        _, _, *state = compiled(frame, *state)

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


def run_core(args: argparse.Namespace) -> List[dict]:
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


def run_flops(args: argparse.Namespace) -> List[dict]:
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
        pool = min(meta["published"]["per_pool_size"])
        shape = (1, 3) + tuple(meta["macs_per_clip"]["input"][1:])
        model = create_model(name, pool_size=pool).eval().to("meta")
        ours = complexity(model, shape)
        published_convention = complexity(model, shape, convention="continual-inference")
        rows.append(
            {
                "model": name,
                "input": "x".join(str(n) for n in shape[1:]),
                "frames_x_rate": f"{protocol.frames}x{protocol.sampling_rate}",
                "params": ours.params,
                "params_published": meta["num_params"],
                "clip_gmacs": ours.clip_macs / 1e9,
                "clip_gmacs_published": meta["macs_per_clip"]["value"],
                "step_gmacs": ours.step_macs / 1e9,
                "step_gmacs_mean": ours.step_macs_mean / 1e9,
                "step_gmacs_published_convention": published_convention.step_macs / 1e9,
                "step_gmacs_published": meta["macs_per_step"]["value"],
                "reduction": ours.clip_macs / ours.step_macs,
                "reduction_published": meta["macs_per_clip"]["value"]
                / meta["macs_per_step"]["value"],
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


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cozoo.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="suite", required=True)
    core = sub.add_parser("core", help="continual layers vs the raw tensor work")
    core.add_argument("--threads", type=int, default=1)
    core.add_argument("--repeats", type=int, default=30)
    core.add_argument("--layers", type=int, default=10)
    core.add_argument("--channels", type=int, default=16)
    core.add_argument("--size", type=int, default=32)
    core.add_argument("--frames", type=int, default=128)
    core.add_argument(
        "--compile", action="store_true", help="also time torch.compile of the step (slow start)"
    )
    core.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    flops = sub.add_parser("flops", help="params and MACs of the model zoo vs the published")
    flops.add_argument("--pattern", default="*", help="model names, e.g. 'cox3d_*'")
    flops.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = run_core(args) if args.suite == "core" else run_flops(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
