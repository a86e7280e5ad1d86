"""Continuous batching: many sources, one batched continual state.

The network steps a batch of ``rows = min(rows, len(sources))`` streams at once; row ``i`` of
every state tensor belongs to the source in row ``i``. When a source ends or fails it is
reported, and the next waiting source takes its row after ``model.clean_state(streams=[i])``
(that row starts over exactly like a fresh single-stream network; the other rows keep their
state). Until the new source has warmed up its row outputs nothing (``model.last_valid``), so
every source gets exactly the predictions it would get streamed alone.

Empty rows: the batch never starts larger than the number of sources; rows empty only once the
queue has drained, and then they are fed a zero step (their outputs are ignored) until the last
source ends: at most the length of the longest remaining source, at the cost of one row each.

::

    scheduler = Scheduler(stream_model, sources, rows=4, mode="offline", sink=outputs)
    stats = scheduler.run()     # one StreamStats per source, in the order given
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .loading import StreamModel, step_transform
from .pacing import Clock, Reader
from .sources import Frame, Source, SourceError

__all__ = ["MODES", "Scheduler", "Sink", "StreamStats", "percentile"]

MODES = ("offline", "realtime")


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


@dataclass
class StreamStats:
    """What happened to one source. ``status``: waiting, running, done, failed, interrupted;
    ``frames``: steps fed to the model; ``dropped``: due frames skipped (real time);
    ``latencies_ms``: the batched steps this source took part in."""

    index: int
    name: str
    location: str
    status: str = "waiting"
    error: Optional[str] = None
    row: Optional[int] = None
    frames: int = 0
    predictions: int = 0
    dropped: int = 0
    started: Optional[float] = None
    ended: Optional[float] = None
    latencies_ms: List[float] = field(default_factory=list)
    top: List[Tuple[str, float]] = field(default_factory=list)

    def elapsed(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else now) - self.started

    def summary(self, now: float) -> dict:
        seconds = self.elapsed(now)
        return {
            "name": self.name,
            "location": self.location,
            "status": self.status,
            "error": self.error,
            "frames": self.frames,
            "predictions": self.predictions,
            "dropped": self.dropped,
            "seconds": round(seconds, 4),
            "frames_per_s": round(self.frames / seconds, 3) if seconds > 0 else None,
            "latency_ms_p50": percentile(self.latencies_ms, 50),
            "latency_ms_p95": percentile(self.latencies_ms, 95),
        }


class Sink:
    """What a scheduler reports; every method is optional."""

    def start(self, stats: StreamStats, source: Source) -> None: ...

    def prediction(self, stats: StreamStats, frame: Frame, step: int, scores: np.ndarray): ...

    def frame(self, stats: StreamStats, frame: Frame) -> None: ...

    def end(self, stats: StreamStats) -> None: ...

    def tick(self, stats: Sequence[StreamStats], now: float) -> None: ...


@dataclass
class _Row:
    reader: Reader
    stats: StreamStats
    start: float = 0.0  # clock time of the source's time 0
    pending: Optional[Frame] = None
    steps: int = 0


class Scheduler:
    """Streams ``sources`` through ``stream_model`` in one batch of ``rows`` rows (see the
    module docstring). ``mode``: ``offline`` (every frame) or ``realtime`` (paced, latest-frame
    drop policy: :mod:`cozoo.stream.pacing`). ``step_shape`` (without the batch dim) is checked
    for every step; None: the first step's shape. ``max_frames`` caps every source; ``stop()``
    returning True ends the run after a step (the running sources: ``interrupted``)."""

    def __init__(
        self,
        stream_model: StreamModel,
        sources: Sequence[Source],
        rows: int = 4,
        mode: str = "offline",
        sink: Optional[Sink] = None,
        clock: Optional[Clock] = None,
        topk: int = 5,
        step_shape: Optional[Tuple[int, ...]] = None,
        max_frames: Optional[int] = None,
        transform: Optional[Callable[[Any], Tensor]] = None,
        stop: Optional[Callable[[], bool]] = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"cozoo.stream: mode must be one of {MODES}, got {mode!r}")
        if int(rows) < 1:
            raise ValueError(f"cozoo.stream: rows must be >= 1, got {rows}")
        self.sm, self.sources, self.mode = stream_model, list(sources), mode
        self.rows = max(1, min(int(rows), len(self.sources)))
        self.sink = sink or Sink()
        self.clock = clock or Clock()
        self.topk, self.max_frames = int(topk), max_frames
        self.step_shape = None if step_shape is None else tuple(step_shape)
        self.transform = transform or step_transform(stream_model.protocol)
        self.stop = stop
        params = getattr(stream_model.model, "parameters", None)
        param = next(iter(params()), None) if callable(params) else None
        self.device = param.device if param is not None else torch.device("cpu")
        self.stats = [
            StreamStats(i, s.name, s.location) for i, s in enumerate(self.sources)
        ]  # fmt: skip
        self.queue: Deque[int] = deque(range(len(self.sources)))
        self.slots: List[Optional[_Row]] = [None] * self.rows
        self.batch_steps = 0
        self.step_latencies_ms: List[float] = []
        self.interrupted = False

    # ---- rows ---------------------------------------------------------------------------------
    def _fill(self, i: int) -> None:
        """Give row ``i`` the next waiting source (its state cleaned), or leave it empty."""
        self.slots[i] = None
        if not self.queue:
            return
        k = self.queue.popleft()
        self.sm.model.clean_state(streams=[i])
        stats = self.stats[k]
        stats.status, stats.row, stats.started = "running", i, self.clock.now()
        self.slots[i] = _Row(Reader(self.sources[k]), stats, start=self.clock.now())
        self.sink.start(stats, self.sources[k])

    def _end(self, i: int, status: str, error: Optional[str] = None) -> None:
        row = self.slots[i]
        if row is None:
            return
        row.reader.close()
        row.stats.status, row.stats.error, row.stats.ended = status, error, self.clock.now()
        self.sink.end(row.stats)
        self._fill(i)

    def _next(self, i: int) -> Optional[Frame]:
        """Row ``i``'s next frame, ending/refilling the row on an end or a failure."""
        while self.slots[i] is not None:
            row = self.slots[i]
            assert row is not None
            if self.max_frames is not None and row.stats.frames >= self.max_frames:
                self._end(i, "done")
                continue
            try:
                frame = row.reader.next()
            except SourceError as e:
                self._end(i, "failed", str(e))
                continue
            if frame is None:
                self._end(i, "done" if row.stats.frames else "failed", None if row.stats.frames
                          else f"{row.stats.location}: no frame")  # fmt: skip
                continue
            if row.stats.frames == 0 and row.pending is None:
                row.start = self.clock.now() - frame.time
            return frame
        return None

    def _pending(self) -> None:
        """Every active row holds a frame in ``pending``."""
        for i in range(self.rows):
            while self.slots[i] is not None and self.slots[i].pending is None:  # type: ignore
                frame = self._next(i)
                if frame is not None:
                    self.slots[i].pending = frame  # type: ignore[union-attr]

    def _pace(self) -> None:
        """Real time: wait until every row's frame is due, then take the newest due ones."""
        active = [r for r in self.slots if r is not None and r.pending is not None]
        if not active:
            return
        self.clock.sleep_until(max(r.start + r.pending.time for r in active))  # type: ignore
        now = self.clock.now()
        for row in active:
            while True:
                ahead = row.reader.peek()
                if ahead is None or row.start + ahead.time > now:
                    break
                if self.max_frames is not None and row.stats.frames >= self.max_frames:
                    break
                row.pending = row.reader.next()
                row.stats.dropped += 1

    def _step_input(self) -> Optional[Tuple[Tensor, List[Optional[Frame]]]]:
        """The batch ``(rows, *step)`` and each row's frame (None: empty row)."""
        while True:
            self._pending()
            if self.mode == "realtime":
                self._pace()
            steps: List[Optional[Tensor]] = [None] * self.rows
            frames: List[Optional[Frame]] = [None] * self.rows
            retry = False
            for i, row in enumerate(self.slots):
                if row is None or row.pending is None:
                    continue
                try:
                    x = self.transform(row.pending.data)
                except Exception as e:
                    row.pending = None
                    self._end(i, "failed", f"{row.stats.location}: {type(e).__name__}: {e}")
                    retry = True
                    continue
                shape = tuple(x.shape)
                if self.step_shape is None:
                    self.step_shape = shape
                if shape != self.step_shape:
                    row.pending = None
                    self._end(i, "failed", f"{row.stats.location}: a step of shape {shape}, "
                              f"expected {self.step_shape} (the model's step)")  # fmt: skip
                    retry = True
                    continue
                steps[i], frames[i] = x, row.pending
            if retry:  # a row failed and was refilled: its new frame goes through again
                continue
            if all(f is None for f in frames):
                return None
            template = next(s for s in steps if s is not None)
            batch = torch.stack([s if s is not None else torch.zeros_like(template) for s in steps])
            return batch.to(self.device, non_blocking=True), frames

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> List[StreamStats]:
        """Stream every source; Ctrl-C marks the running ones ``interrupted`` and returns."""
        for i in range(self.rows):
            self._fill(i)
        try:
            with torch.inference_mode():
                while any(r is not None for r in self.slots):
                    got = self._step_input()
                    if got is None:
                        break
                    self._step(*got)
                    if self.stop is not None and self.stop():
                        break
        except KeyboardInterrupt:
            self.interrupted = True
        finally:  # Ctrl-C (or an error of the network itself): end the running rows cleanly
            self.queue.clear()
            for i in range(self.rows):
                self._end(i, "interrupted")
        return self.stats

    def _step(self, batch: Tensor, frames: List[Optional[Frame]]) -> None:
        t0 = self.clock.now()
        y = self.sm.model.forward_step(batch)
        latency_ms = (self.clock.now() - t0) * 1e3
        self.batch_steps += 1
        self.step_latencies_ms.append(latency_ms)
        valid = self.sm.model.last_valid
        scores = None
        if y is not None:
            scores = torch.softmax(y.reshape(y.shape[0], -1).float(), dim=1).cpu().numpy()
        for i, frame in enumerate(frames):
            row = self.slots[i]
            if frame is None or row is None:
                continue
            row.pending = None
            stats = row.stats
            stats.frames += 1
            stats.latencies_ms.append(latency_ms)
            self.sink.frame(stats, frame)
            ok = valid if isinstance(valid, bool) else valid[i]
            if ok and scores is not None:
                stats.predictions += 1
                order = np.argsort(-scores[i])[: self.topk]
                stats.top = [(self.sm.label(int(k)), float(scores[i, k])) for k in order]
                self.sink.prediction(stats, frame, row.steps, scores[i])
            row.steps += 1
        self.sink.tick(self.stats, self.clock.now())
