"""Clocks and the per-row reader a scheduler paces: offline (every frame, as fast as the model
goes) or real time (a frame is due at its own time; the model takes the newest due frame).

Drop policy of ``mode=realtime`` ("latest frame"): a batched step takes one frame of every row,
so it waits until every active row has a frame due (a file source's frame ``k`` is due
``time_k`` seconds after the source started; a camera's frames come when they come); each row
then takes its newest due frame and drops the older due ones it has not fed yet, counting them.
Sources of different frame rates in one batch therefore step at the slowest one's rate, and the
faster ones drop the surplus. Dropped frames are decoded (a stream is read in order) but neither
preprocessed nor fed to the model.
"""

from __future__ import annotations

import time
from typing import Iterator, Optional

from .sources import Frame, Source, SourceError

__all__ = ["Clock", "FakeClock", "Reader"]


class Clock:
    """Wall-clock seconds (``time.perf_counter``)."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float) -> None:
        dt = t - self.now()
        if dt > 0:
            time.sleep(dt)


class FakeClock(Clock):
    """A clock that moves only when told (tests): ``sleep_until`` jumps, ``advance`` adds."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = float(t)

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, float(t))

    def advance(self, dt: float) -> None:
        self.t += float(dt)


class Reader:
    """A source's frames with one frame of look-ahead (``peek``) and its error kept for the read
    that reaches it: the frames before a failure are still fed."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._it: Optional[Iterator[Frame]] = None
        self._ahead: Optional[Frame] = None
        self._error: Optional[SourceError] = None
        self._ended = False

    def _pull(self) -> None:
        if self._ahead is not None or self._ended or self._error is not None:
            return
        try:
            if self._it is None:
                self._it = self.source.frames()
            self._ahead = next(self._it)
        except StopIteration:
            self._ended = True
        except SourceError as e:
            self._error = e
        except Exception as e:  # anything a source raises is that source's failure
            self._error = SourceError(f"{self.source.location}: {type(e).__name__}: {e}")

    def peek(self) -> Optional[Frame]:
        """The next frame without taking it (None at the end or before an error)."""
        self._pull()
        return self._ahead

    def next(self) -> Optional[Frame]:
        """The next frame, None at the end; raises the source's ``SourceError`` once the frames
        before it are taken."""
        self._pull()
        if self._ahead is None and self._error is not None:
            raise self._error
        frame, self._ahead = self._ahead, None
        return frame

    def close(self) -> None:
        if self._it is not None and hasattr(self._it, "close"):
            try:
                self._it.close()  # type: ignore[union-attr]
            except Exception:
                pass
        self._it = None
