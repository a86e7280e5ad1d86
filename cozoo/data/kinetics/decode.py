"""Decoding the frames of a clip with PyAV: the video resampled to a fixed frame rate (nearest
decoded frame in time), reading no more of the file than the clip needs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
from torch import Tensor

__all__ = ["DecodeError", "read_frames"]

PathLike = Union[str, os.PathLike]


class DecodeError(RuntimeError):
    """A video could not be opened or decoded."""


@dataclass(frozen=True)
class _Clock:
    """Timing of a video stream: its decoded frame ``rate`` (frames per second), its
    ``time_base`` (seconds per timestamp unit) and the time of its first frame, ``origin`` (s)."""

    rate: float
    time_base: float
    origin: float


class _DecodedFrame:
    """A decoded frame and its time (s); converted to RGB once, and only if used."""

    __slots__ = ("_rgb", "frame", "time")

    def __init__(self, time: float, frame: Any) -> None:
        self.time, self.frame = time, frame
        self._rgb: Optional[np.ndarray] = None

    def rgb(self) -> np.ndarray:
        """uint8 ``(H, W, 3)``."""
        if self._rgb is None:
            self._rgb = self.frame.to_ndarray(format="rgb24")
        return self._rgb


def _duration(container: Any, stream: Any) -> float:
    """Seconds of video according to the headers (0.0 when unknown)."""
    import av

    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    return 0.0


def _num_frames(container: Any, stream: Any, rate: float, fps: int) -> int:
    """Frames of the video resampled to ``fps`` (at least 1); a video without a duration in
    its headers is decoded once to count its frames."""
    duration = _duration(container, stream)
    if duration <= 0:
        duration = sum(1 for _ in container.decode(stream)) / rate
        container.seek(0)
    return max(1, math.floor(duration * fps + 1e-6))


def _decode_nearest(
    container: Any,
    stream: Any,
    wanted: List[float],
    clock: _Clock,
    fps: int,
    seek_to: Optional[float],
) -> Optional[Dict[float, np.ndarray]]:
    """Decode from ``seek_to`` (s; ``None``: the start) and give every ``wanted`` time (sorted)
    its nearest frame, the earlier one on a tie; times past the last frame get the last frame.
    Holds two decoded frames at most. ``None`` when the seek landed after the first wanted
    frame."""
    if seek_to is not None:
        container.seek(int(seek_to / clock.time_base), stream=stream, backward=True)
    else:
        container.seek(0)
    got: Dict[float, np.ndarray] = {}
    prev: Optional[_DecodedFrame] = None
    for k, frame in enumerate(container.decode(stream)):
        t = frame.time if frame.time is not None else clock.origin + k / clock.rate
        cur = _DecodedFrame(t, frame)
        if prev is None and seek_to is not None and t > wanted[0] + 1.0 / fps:
            return None
        while len(got) < len(wanted):
            w = wanted[len(got)]
            if w > t:
                break
            take_prev = prev is not None and w - prev.time <= t - w
            got[w] = (prev if take_prev and prev is not None else cur).rgb()
        if len(got) == len(wanted):
            break
        prev = cur
    while prev is not None and len(got) < len(wanted):  # past the last frame
        got[wanted[len(got)]] = prev.rgb()
    return got


def read_frames(
    path: PathLike,
    select: Callable[[int], Tensor],
    fps: int = 30,
) -> np.ndarray:
    """Decode the frames ``select(n)`` of the video resampled to ``fps``, ``n`` being its number
    of frames at ``fps`` (nearest decoded frame in time, the earlier one on a tie; indices past
    the end give the last frame). Seeks to the key frame before the first wanted frame (when it
    is more than 1 s in), decodes only up to the last, and converts to RGB only the frames used,
    holding at most two decoded frames at a time.

    Returns uint8 RGB ``(len(select(n)), H, W, 3)``. Raises :class:`DecodeError`.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else float(fps)
            n = _num_frames(container, stream, rate, fps)
            idx = select(n).clamp(0, n - 1).tolist()
            time_base = float(stream.time_base) if stream.time_base else 1.0 / fps
            clock = _Clock(rate, time_base, (stream.start_time or 0) * time_base)
            targets = [clock.origin + i / fps for i in idx]
            wanted = sorted(set(targets))
            got = None
            if wanted[0] - clock.origin > 1.0:
                try:
                    got = _decode_nearest(container, stream, wanted, clock, fps, wanted[0])
                except av.error.FFmpegError:  # e.g. a file without a seek index
                    got = None
            if got is None:  # short offset, or the seek landed after the first wanted frame
                got = _decode_nearest(container, stream, wanted, clock, fps, None)
            if not got:
                raise DecodeError(f"{path}: no decodable frame")
            return np.stack([got[t] for t in targets])
    except DecodeError:
        raise
    except Exception as e:  # any FFmpeg/PyAV failure makes the video unreadable
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from e
