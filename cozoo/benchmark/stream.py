"""``python -m cozoo.benchmark suite=stream``: the whole streaming path of ``cozoo.stream``
(PyAV decoding, per-frame preprocessing, the batched ``forward_step``, continuous batching) for
``streams`` sources on ``rows`` batch rows: frames/s (all streams together) and step latency.

Every source is the same small generated video (``stream.video_frames`` frames of 80×64 at
30 fps, written once into a temporary folder), decoded on its own and brought to the model's
published input protocol (CoX3D-S: 160², CoX3D-M: 224², every ``sampling_rate``-th frame).
Random weights: the speed is the same. Each row runs for about ``stream.seconds`` seconds after
``stream.warmup`` untimed batched steps; frames/s counts the frames fed in the timed part.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import torch

from cozoo.models import create_model, get_model_weights
from cozoo.stream import Scheduler, StreamModel, VideoSource
from cozoo.stream.scheduler import percentile

from .speed import as_list
from .timing import load_average, resolve_threads

__all__ = ["bench_stream", "run_stream"]


def _video(folder: Path, frames: int) -> str:
    from cozoo.data.kinetics.sample import encode_mp4

    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(128, 40, (frames, 64, 80, 3)), 0, 255).astype(np.uint8)
    path = folder / "stream.mp4"
    encode_mp4(path, x, fps=30)
    return str(path)


def bench_stream(
    name: str, video: str, streams: int, rows: int, seconds: float, warmup: int, pool_size: int = 64
):
    """One row: ``streams`` copies of ``video`` through ``name`` on ``rows`` rows."""
    protocol = get_model_weights(name).DEFAULT.meta.input
    torch.manual_seed(0)
    sm = StreamModel(create_model(name, pool_size=pool_size).eval(), name, "random", protocol)
    sources = [
        VideoSource(video, f"s{i}", fps=protocol.fps, sampling_rate=protocol.sampling_rate)
        for i in range(streams)
    ]
    state = {"t0": None, "steps": 0}

    def stop() -> bool:
        state["steps"] += 1
        if state["steps"] == warmup:
            state["t0"] = time.perf_counter()
            state["frames0"] = sum(s.frames for s in scheduler.stats)
        return state["t0"] is not None and time.perf_counter() - state["t0"] >= seconds

    scheduler = Scheduler(sm, sources, rows=rows, stop=stop)
    stats = scheduler.run()
    elapsed = time.perf_counter() - (state["t0"] or time.perf_counter())
    frames = sum(s.frames for s in stats) - state.get("frames0", 0)
    timed = scheduler.step_latencies_ms[warmup:]
    return {
        "suite": "stream",
        "model": name,
        "crop": protocol.crop,
        "streams": streams,
        "rows": scheduler.rows,
        "threads": torch.get_num_threads(),
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 2) if elapsed > 0 else None,
        "frames_per_s_per_stream": round(frames / elapsed / streams, 2) if elapsed > 0 else None,
        "step_ms_p50": percentile(timed, 50),
        "step_ms_p95": percentile(timed, 95),
        "load": load_average(),
    }


def run_stream(cfg: Any) -> List[dict]:
    """Every model x thread count x streams x rows (rows <= streams) of ``cfg.stream``."""
    sc = cfg.stream
    rows_out: List[dict] = []
    with tempfile.TemporaryDirectory(prefix="cozoo-stream-bench-") as tmp:
        video = _video(Path(tmp), int(sc.video_frames))
        print(
            f"{'model':8} {'crop':>4} {'thr':>3} {'streams':>7} {'rows':>4} {'frames/s':>9} "
            f"{'per stream':>10} {'step p50 ms':>11} {'step p95 ms':>11} {'load':>5}"
        )
        for threads in as_list(cfg.threads, [1]):
            torch.set_num_threads(resolve_threads(threads))
            for name in sc.models:
                for streams in as_list(sc.streams, [1]):
                    for rows in as_list(sc.rows, [1]):
                        if rows > streams:
                            continue
                        r = bench_stream(
                            name, video, streams, rows, float(sc.seconds), int(sc.warmup),
                            int(cfg.get("pool_size") or 64),
                        )  # fmt: skip
                        rows_out.append(r)
                        print(
                            f"{r['model']:8} {r['crop']:4d} {r['threads']:3d} {streams:7d} "
                            f"{r['rows']:4d} {r['frames_per_s']:9.1f} "
                            f"{r['frames_per_s_per_stream']:10.1f} {r['step_ms_p50']:11.1f} "
                            f"{r['step_ms_p95']:11.1f} {r['load']:5.2f}",
                            flush=True,
                        )
    return rows_out
