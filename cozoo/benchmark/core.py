"""The ``core`` suite: the continual layer library against the raw tensor work it has to do.

- **step**: ``forward_step`` of a stack of ``Conv3d(C, C, 3, padding=(0, 1, 1))`` + ReLU layers
  on one ``(1, C, H, W)`` frame, against the minimum tensor work one new frame needs (per
  layer: one 2-D convolution over the 3 tapped frames stacked as channels, and the ReLU), and
  against a ``conv3d`` over the 3-frame window (what a naive step computes);
- **chunk**: ``forward_steps`` over ``T`` frames against ``forward`` over the same frames, for a
  conv stack and for a conv + 64-wide average pool stack;
- **compile** (``core.compile=true``): ``co.compile_step`` against the eager ``forward_step``.
"""

from __future__ import annotations

import os
from typing import Any, List

import torch
import torch.nn.functional as F
from torch import nn

from cozoo import co

from .compiling import compiled_past_warm_up
from .results import print_core_table
from .timing import interleaved, load_average, processor


def conv_stack(layers: int, channels: int) -> co.Sequential:
    """``layers`` x (Conv3d(C, C, 3, padding=(0, 1, 1)) + ReLU), in eval mode: clips
    ``(B, C, T, H, W)``, steps ``(B, C, H, W)``."""
    modules: List[nn.Module] = []
    for _ in range(layers):
        modules += [co.Conv3d(channels, channels, 3, padding=(0, 1, 1)), nn.ReLU()]
    return co.Sequential(*modules).eval()


def _stack_name(layers: int, channels: int, size: int) -> str:
    return f"{layers}x Conv3d({channels},{channels},3)+ReLU, 1x{channels}x{size}x{size} frame"


def bench_step(layers: int, channels: int, size: int, repeats: int) -> List[dict]:
    """``forward_step`` of ``conv_stack`` on a ``(1, C, size, size)`` frame against the raw 2-D
    tap work and against a ``conv3d`` over the ``(1, C, 3, size, size)`` window."""
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
    name = _stack_name(layers, channels, size)
    rows = []
    for label, raw, target in (
        ("forward_step vs raw 2-D tap work", raw_2d, 1.5),
        ("forward_step vs raw conv3d on the window", raw_3d, None),
    ):
        r = interleaved(step, raw, repeats, inner=5)
        rows.append({"benchmark": "step", "model": name, "pair": label, "target": target, **r})
    return rows


def bench_compile(layers: int, channels: int, size: int, repeats: int) -> List[dict]:
    """``co.compile_step`` of ``conv_stack`` against its eager ``forward_step`` on a
    ``(1, C, size, size)`` frame."""
    net = conv_stack(layers, channels)
    frame = torch.randn(1, channels, size, size)
    compiled = compiled_past_warm_up(net, frame[None])
    for _ in range(3):
        net.forward_step(frame)

    def compiled_step() -> None:
        compiled(frame)

    r = interleaved(compiled_step, lambda: net.forward_step(frame), repeats, inner=5)
    pair = "compiled step vs eager forward_step"
    row = {"benchmark": "compile", "model": _stack_name(layers, channels, size), "pair": pair}
    return [{**row, "target": None, **r}]


def bench_chunk(frames: int, channels: int, size: int, repeats: int) -> List[dict]:
    """``forward_steps`` against ``forward`` on a ``(1, C, frames, size, size)`` clip."""
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


def run_core(args: Any) -> List[dict]:
    """The core suite at ``args.threads`` threads (``layers``, ``channels``, ``size``,
    ``frames``, ``repeats``, ``compile``); prints and returns the rows."""
    torch.set_num_threads(args.threads)
    load_before = load_average()
    with torch.inference_mode():
        rows = bench_step(args.layers, args.channels, args.size, args.repeats)
        rows += bench_chunk(args.frames, args.channels, args.size, max(args.repeats // 3, 5))
        if args.compile:
            rows += bench_compile(args.layers, args.channels, args.size, args.repeats)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {processor()}, "
        f"{os.cpu_count()} cores; load average (1 min) {load_before:.2f} before, "
        f"{load_average():.2f} after"
    )
    print_core_table(rows)
    return rows
