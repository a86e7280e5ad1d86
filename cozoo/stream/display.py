"""The live view of a stream run (rich): one line per source with its status, frames fed,
frames/s, p50/p95 step latency, dropped frames and current top-k. Off when standard output is not
a terminal or with ``display=false``; then a line is printed per source as it ends."""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

from .scheduler import Sink, StreamStats, percentile

__all__ = ["LiveDisplay", "describe"]


def describe(stats: StreamStats) -> str:
    """A one-line account of a source: ``clip [done] 120 frames, 58 predictions, ...``."""
    p50, p95 = percentile(stats.latencies_ms, 50), percentile(stats.latencies_ms, 95)
    lat = f", step p50/p95 {p50:.1f}/{p95:.1f} ms" if p50 is not None and p95 is not None else ""
    top = f", top: {stats.top[0][0]} {stats.top[0][1]:.2f}" if stats.top else ""
    err = f": {stats.error}" if stats.error else ""
    return (
        f"{stats.name} [{stats.status}{err}] {stats.frames} frames, {stats.predictions} "
        f"predictions, {stats.dropped} dropped{lat}{top}"
    )


class LiveDisplay(Sink):
    """Forwards every event to ``inner`` (the outputs) and redraws a rich table at most every
    ``refresh_s`` seconds of the scheduler's clock."""

    def __init__(self, inner: Sink, enabled: bool = True, topk: int = 3, refresh_s: float = 0.25):
        self.inner, self.topk, self.refresh_s = inner, topk, refresh_s
        self.enabled = bool(enabled) and sys.stdout.isatty()
        self.live: Optional[Any] = None
        self._last = -1e9

    def __enter__(self) -> LiveDisplay:
        if self.enabled:
            from rich.live import Live

            self.live = Live(auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def start(self, stats, source) -> None:
        self.inner.start(stats, source)

    def prediction(self, stats, frame, step, scores) -> None:
        self.inner.prediction(stats, frame, step, scores)

    def frame(self, stats, frame) -> None:
        self.inner.frame(stats, frame)

    def end(self, stats: StreamStats) -> None:
        self.inner.end(stats)
        if self.live is None:
            print(f"cozoo.stream: {describe(stats)}", flush=True)

    def tick(self, stats: Sequence[StreamStats], now: float) -> None:
        self.inner.tick(stats, now)
        if self.live is None or now - self._last < self.refresh_s:
            return
        self._last = now
        self.live.update(self.table(stats, now), refresh=True)

    def final(self, stats: Sequence[StreamStats], now: float) -> None:
        """Draw the table once more with every source's final state."""
        if self.live is not None:
            self.live.update(self.table(stats, now), refresh=True)

    def table(self, stats: Sequence[StreamStats], now: float) -> Any:
        from rich.table import Table

        table = Table(title="cozoo.stream (step latency p50/p95 in ms)", expand=False)
        table.add_column("source", no_wrap=True, overflow="ellipsis", min_width=8, max_width=20)
        for col, width in (("row", 3), ("status", 7), ("frames", 6), ("fps", 5), ("p50", 5),
                           ("p95", 5), ("drops", 5)):  # fmt: skip
            justify = "left" if col == "status" else "right"
            table.add_column(col, justify=justify, no_wrap=True, min_width=width)
        table.add_column(f"top-{self.topk}", overflow="fold", min_width=12)
        for s in stats:
            seconds = s.elapsed(now)
            p50, p95 = percentile(s.latencies_ms, 50), percentile(s.latencies_ms, 95)
            table.add_row(
                s.name,
                "" if s.row is None else str(s.row),
                s.status,
                str(s.frames),
                f"{s.frames / seconds:.1f}" if seconds > 0 else "",
                "" if p50 is None else f"{p50:.1f}",
                "" if p95 is None else f"{p95:.1f}",
                str(s.dropped),
                "  ".join(f"{label} {score:.2f}" for label, score in s.top[: self.topk]),
            )
        return table
