"""What a stream run writes under its run folder (``runs/stream/<run>/``)::

    <stem>.jsonl        one record per prediction, appended and flushed as it is made:
                        {"frame": 42, "time": 1.4, "step": 21, "top": [{"label": "growing",
                         "index": 0, "score": 0.71}, ...]}
    <stem>.png          timeline of the class scores over time (when the source ends)
    <stem>.mp4          with annotate=true (video sources): the frames the model saw, top-k on
    summary.json        latency percentiles, throughput, drops, per source and overall;
                        written atomically (temporary file + rename) at the end

``<stem>`` is the source's name, made unique (``clip``, ``clip-1``...) when two share it. A source
that fails keeps what it wrote so far: records are flushed one by one and its video is closed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from cozoo.plots import plot_timeline

from .scheduler import Sink, StreamStats
from .sources import Frame, Source

__all__ = ["Outputs", "write_json_atomic"]

#: Predictions kept in memory per source for its timeline (the JSONL has all of them).
TIMELINE_MAX = 20000


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class _Annotator:
    """An mp4 of the frames a video source fed, with the current top-k drawn on them (PyAV,
    Pillow)."""

    def __init__(self, path: Path, rate: float) -> None:
        self.path, self.rate = path, rate
        self.container: Any = None
        self.stream: Any = None

    def write(self, rgb: np.ndarray, lines: Sequence[str]) -> None:
        import av
        from PIL import Image, ImageDraw

        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # yuv420p: even sizes
        if self.container is None:
            from fractions import Fraction

            self.container = av.open(str(self.path), mode="w", format="mp4")
            rate = Fraction(self.rate).limit_denominator(1000)
            self.stream = self.container.add_stream("mpeg4", rate=rate)
            self.stream.width, self.stream.height, self.stream.pix_fmt = w, h, "yuv420p"
        image = Image.fromarray(np.ascontiguousarray(rgb[:h, :w]))
        draw = ImageDraw.Draw(image)
        for n, line in enumerate(lines):
            draw.text((3, 2 + 11 * n), line, fill=(255, 255, 0))
        frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            self.container = None


class Outputs(Sink):
    """The files of a run (see the module docstring); ``label(k)`` names class ``k``."""

    def __init__(
        self,
        run_dir: Path,
        label=lambda k: f"class {k}",
        class_names: Optional[List[str]] = None,
        annotate: bool = False,
        timeline: bool = True,
        timeline_classes: int = 5,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.label, self.class_names = label, class_names
        self.annotate, self.timeline, self.timeline_classes = annotate, timeline, timeline_classes
        self.stems: Dict[int, str] = {}
        self.files: Dict[int, Any] = {}
        self.scores: Dict[int, List[np.ndarray]] = {}
        self.times: Dict[int, List[float]] = {}
        self.videos: Dict[int, _Annotator] = {}
        self.sources: Dict[int, Source] = {}
        self.paths: Dict[int, Dict[str, str]] = {}

    def _stem(self, name: str) -> str:
        taken = set(self.stems.values()) | {"summary"}
        stem, n = name, 0
        while stem in taken:
            n += 1
            stem = f"{name}-{n}"
        return stem

    def start(self, stats: StreamStats, source: Source) -> None:
        stem = self.stems[stats.index] = self._stem(stats.name)
        path = self.run_dir / f"{stem}.jsonl"
        self.files[stats.index] = open(path, "a", buffering=1)
        self.paths[stats.index] = {"jsonl": str(path)}
        self.scores[stats.index], self.times[stats.index] = [], []
        self.sources[stats.index] = source
        if self.annotate and source.kind == "video":
            video = self.run_dir / f"{stem}.mp4"
            self.videos[stats.index] = _Annotator(video, source.rate)
            self.paths[stats.index]["mp4"] = str(video)

    def prediction(self, stats: StreamStats, frame: Frame, step: int, scores: np.ndarray):
        order = np.argsort(-scores)[: max(1, len(stats.top))]
        top = [
            {"label": self.label(int(k)), "index": int(k), "score": round(float(scores[k]), 6)}
            for k in order
        ]
        record = {"frame": frame.index, "time": round(frame.time, 6), "step": step, "top": top}
        f = self.files[stats.index]
        f.write(json.dumps(record) + "\n")
        f.flush()
        if len(self.times[stats.index]) < TIMELINE_MAX:
            self.times[stats.index].append(frame.time)
            self.scores[stats.index].append(scores.astype(np.float16))

    def frame(self, stats: StreamStats, frame: Frame) -> None:
        video = self.videos.get(stats.index)
        if video is None:
            return
        lines = [f"{label}: {score:.2f}" for label, score in stats.top] or ["warming up"]
        try:
            video.write(frame.data, lines)
        except Exception as e:  # the annotated video is optional: report, keep streaming
            print(f"cozoo.stream: {stats.name}: annotated video stopped: {e}")
            video.close()
            self.videos.pop(stats.index, None)

    def end(self, stats: StreamStats) -> None:
        i = stats.index
        if i in self.files:
            self.files.pop(i).close()
        if i in self.videos:
            self.videos.pop(i).close()
        if self.timeline and self.times.get(i):
            png = self.run_dir / f"{self.stems[i]}.png"
            plot_timeline(
                self.times[i],
                np.stack(self.scores[i]).astype(np.float32),
                png,
                class_names=self.class_names
                or [self.label(k) for k in range(len(self.scores[i][0]))],
                k=self.timeline_classes,
                title=f"{stats.name}: class scores over time",
            )
            self.paths[i]["png"] = str(png)
            self.scores[i], self.times[i] = [], []

    def write_summary(self, summary: Dict[str, Any]) -> Path:
        for entry in summary.get("streams", []):
            entry["files"] = self.paths.get(entry["index"], {})
        return write_json_atomic(self.run_dir / "summary.json", summary)
