"""Stream sources: where the steps come from, one frame at a time.

Every source yields :class:`Frame` s (``index`` in the source's own numbering, ``time`` in
seconds from its first frame, ``data`` the raw step) lazily, so a camera or a network stream
never has to end and a file is never read whole into memory::

    VideoSource   a video file, a camera device (/dev/video0, 0) or a network URL (rtsp://,
                  http(s)://, ...) through PyAV, resampled to the protocol's frame rate and
                  sampling rate (nearest decoded frame in time); data: uint8 RGB (H, W, 3)
    StepArraySource  any ``.npy`` array (L, ...) fed step by step along its first axis
                  (per-video feature arrays (L, C) of a detection model, or any model whose
                  step is (B, ...)); data: float32 (...)
    SkeletonSource   joint coordinates (T, V, M, C) or (C, T, V, M) ``.npy``, or an NTU
                  ``.skeleton`` file (parsed and pre-normalised as cozoo.data.ntu prepares
                  it), or a sequence of a pyskl annotation pickle (``pyskl_sources``);
                  data: float32 (C, V, M) in the model's modality

A source that cannot be opened or read raises :class:`SourceError` naming the source; the
scheduler reports it for that stream alone and goes on with the others.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "Frame",
    "SkeletonSource",
    "Source",
    "SourceError",
    "StepArraySource",
    "VideoSource",
    "expand_inputs",
    "is_live",
]

#: File suffixes of videos (a folder input streams every such file in it, sorted).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


class SourceError(RuntimeError):
    """A source could not be opened or read (or gave a step of the wrong shape)."""


@dataclass
class Frame:
    """One step of a source: ``index`` (frame number in the source's own numbering; for a
    resampled video, the frame at the protocol's frame rate), ``time`` (s since the first
    frame) and the raw ``data``."""

    index: int
    time: float
    data: Any


class Source:
    """A stream of steps. ``name`` labels its outputs (a file stem), ``location`` is what the
    user gave, ``live`` marks cameras and network streams (no end, no seeking) and ``rate`` is
    the steps per second a real-time run paces it at."""

    kind = "steps"

    def __init__(self, location: str, name: Optional[str] = None, rate: float = 30.0) -> None:
        self.location = str(location)
        self.name = name or _stem(self.location)
        self.rate = float(rate)
        self.live = is_live(self.location)

    def frames(self) -> Iterator[Frame]:
        """The steps, lazily; raises :class:`SourceError`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def _stem(location: str) -> str:
    """A file-name-safe stem: ``a/b/clip.mp4`` -> ``clip``, ``rtsp://host:554/x`` ->
    ``host_554_x``, ``/dev/video0`` -> ``video0``."""
    if "://" in location:
        location = location.split("://", 1)[1]
        stem = location
    else:
        stem = Path(location).name
        stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem or "stream"


def is_live(location: str) -> bool:
    """Camera devices (``/dev/videoN``, a bare device number) and network URLs."""
    s = str(location)
    return s.isdigit() or s.startswith("/dev/video") or ("://" in s and not s.startswith("file:"))


def _open_container(location: str, timeout: float) -> Any:
    import av

    if location.isdigit():
        location = f"/dev/video{location}"
    if location.startswith("/dev/video"):
        return av.open(location, format="v4l2")
    if "://" in location and not location.startswith("file:"):
        options = {"rtsp_transport": "tcp"} if location.startswith("rtsp") else {}
        return av.open(location, options=options, timeout=timeout)
    return av.open(location)


class VideoSource(Source):
    """A video file, camera or network stream, resampled to ``fps`` (nearest decoded frame in
    time, the earlier one on a tie, as :func:`cozoo.data.kinetics.read_frames` does) and then
    every ``sampling_rate``-th frame kept: the frames a clip of the protocol would see.

    ``data`` is uint8 RGB ``(H, W, 3)``; ``index`` counts frames at ``fps``."""

    kind = "video"

    def __init__(
        self,
        location: str,
        name: Optional[str] = None,
        fps: float = 30.0,
        sampling_rate: int = 1,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(location, name, rate=float(fps) / max(1, int(sampling_rate)))
        self.fps, self.sampling_rate, self.timeout = float(fps), max(1, int(sampling_rate)), timeout

    def frames(self) -> Iterator[Frame]:
        try:
            container = _open_container(self.location, self.timeout)
        except Exception as e:  # FFmpeg/PyAV: missing file, bad URL, no device
            raise SourceError(f"{self.location}: cannot open: {type(e).__name__}: {e}") from e
        try:
            if not container.streams.video:
                raise SourceError(f"{self.location}: no video stream")
            yield from self._resample(container, container.streams.video[0])
        finally:
            container.close()

    def _resample(self, container: Any, stream: Any) -> Iterator[Frame]:
        rate = float(stream.average_rate) if stream.average_rate else self.fps
        step = self.sampling_rate / self.fps  # seconds between kept frames
        origin: Optional[float] = None
        k = 0  # kept frames so far
        prev: Optional[Tuple[float, Any]] = None
        try:
            for n, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else n / rate
                if origin is None:
                    origin = t
                t -= origin
                while k * step <= t + 1e-9:
                    target = k * step
                    use = prev if prev is not None and target - prev[0] <= t - target else None
                    chosen = use[1] if use is not None else frame
                    yield Frame(k * self.sampling_rate, target, chosen.to_ndarray(format="rgb24"))
                    k += 1
                prev = (t, frame)
        except SourceError:
            raise
        except Exception as e:  # a decoding error, a camera that disappears, a dropped link
            raise SourceError(
                f"{self.location}: stopped after {k} frames: {type(e).__name__}: {e}"
            ) from e


def _load_npy(location: str) -> np.ndarray:
    try:
        return np.load(location, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise SourceError(f"{location}: cannot read as .npy: {type(e).__name__}: {e}") from e


class StepArraySource(Source):
    """An array ``(L, ...)`` fed step by step along its first axis: ``data`` of step ``t`` is
    ``array[t]`` as float32. ``location`` is a ``.npy`` file (memory-mapped) or ``array`` is
    given. ``step_shape`` (optional) is checked up front: a source of the wrong shape fails
    before its first step."""

    def __init__(
        self,
        location: str,
        name: Optional[str] = None,
        rate: float = 30.0,
        array: Optional[np.ndarray] = None,
        step_shape: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__(location, name, rate)
        self.array = array
        self.step_shape = None if step_shape is None else tuple(int(s) for s in step_shape)

    def _steps(self) -> np.ndarray:
        x = self.array if self.array is not None else _load_npy(self.location)
        if x.ndim < 1:
            raise SourceError(f"{self.location}: expected an array (L, ...), got a scalar")
        if self.step_shape is not None and tuple(x.shape[1:]) != self.step_shape:
            raise SourceError(
                f"{self.location}: expected steps of shape {self.step_shape} (an array "
                f"(L, {', '.join(map(str, self.step_shape))})), got an array {tuple(x.shape)}"
            )
        return x

    def frames(self) -> Iterator[Frame]:
        x = self._steps()
        for t in range(x.shape[0]):
            yield Frame(t, t / self.rate, np.asarray(x[t], dtype=np.float32))


class SkeletonSource(StepArraySource):
    """Joint coordinates of a skeleton model: a ``.npy`` of ``(T, V, M, C)`` or ``(C, T, V, M)``
    (the layout is told apart by where ``joints`` and ``persons`` fit), or an NTU ``.skeleton``
    file (pre-normalised like ``python -m cozoo.data.ntu prepare`` does, over its own length).
    Steps are ``(C', V, M)`` in ``modality`` (``joint_bone``: 6 channels); fewer persons than
    the model's are padded with zeros (empty body slots, as in the 2s-AGCN layout)."""

    kind = "skeleton"

    def __init__(
        self,
        location: str,
        name: Optional[str] = None,
        rate: float = 30.0,
        channels: int = 3,
        joints: int = 25,
        persons: int = 2,
        graph: str = "ntu",
        modality: str = "joint",
        array: Optional[np.ndarray] = None,
        loader: Optional[Callable[[], np.ndarray]] = None,
    ) -> None:
        super().__init__(location, name, rate, array)
        self.loader = loader  # gives the joints (C, T, V, M) when the stream starts
        self.channels, self.joints, self.persons = int(channels), int(joints), int(persons)
        self.graph, self.modality = graph, modality

    def _ctvm(self) -> np.ndarray:
        """The joints as ``(C, T, V, M)``."""
        if self.loader is not None:
            return self.loader()
        if self.array is None and self.location.endswith(".skeleton"):
            from cozoo.data.ntu import SkeletonFileError, normalize_agcn, read_skeleton

            try:
                bodies = read_skeleton(self.location)
            except (SkeletonFileError, OSError) as e:
                raise SourceError(f"{self.location}: {e}") from e
            if bodies.shape[1] == 0:
                raise SourceError(f"{self.location}: no frame")
            return normalize_agcn(bodies, bodies.shape[1], max_bodies=self.persons)
        x = self.array if self.array is not None else _load_npy(self.location)
        joint_channels = 3 if self.modality == "joint_bone" else self.channels
        v, m = self.joints, self.persons
        if x.ndim == 5 and x.shape[0] == 1:  # one sequence of a (N, C, T, V, M) file
            x = x[0]
        if x.ndim == 4 and x.shape[2] == v and x.shape[0] == joint_channels and x.shape[3] <= m:
            return np.asarray(x, dtype=np.float32)
        if x.ndim == 4 and x.shape[1] == v and x.shape[3] == joint_channels and x.shape[2] <= m:
            return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(3, 0, 1, 2))
        raise SourceError(
            f"{self.location}: expected joints (T, V, M, C) or (C, T, V, M) with V={v}, "
            f"M<={m}, C={joint_channels}, got an array {tuple(x.shape)}"
        )

    def frames(self) -> Iterator[Frame]:
        x = self._ctvm()
        if x.shape[3] < self.persons:  # empty body slots
            pad = np.zeros(x.shape[:3] + (self.persons - x.shape[3],), np.float32)
            x = np.concatenate([x, pad], axis=3)
        if self.modality != "joint":
            from cozoo.data.ntu import to_modality
            from cozoo.models.skeleton.graph import get_skeleton

            x = to_modality(x, self.modality, get_skeleton(self.graph))
        for t in range(x.shape[1]):
            yield Frame(t, t / self.rate, np.ascontiguousarray(x[:, t], dtype=np.float32))


def pyskl_sources(location: str, split: str = "xsub_val", **kwargs: Any) -> List[SkeletonSource]:
    """One source per sequence of the split list ``split`` of a pyskl annotation pickle
    (``location`` may end in ``::SPLIT``): its camera-space keypoints ``(M, T, V, 3)``
    pre-normalised over their own length, as the pyskl layout of ``cozoo.data.ntu`` reads them.
    """
    from cozoo.data.ntu.layouts import PysklSplit

    path, _, key = location.partition("::")
    try:
        items = PysklSplit(path, key or split)
    except (OSError, KeyError, ValueError) as e:
        raise SourceError(f"{location}: {e}") from e

    def loader(i: int) -> Callable[[], np.ndarray]:
        from cozoo.data.ntu import normalize_agcn

        def load() -> np.ndarray:
            kp = np.asarray(items._keypoints[i], dtype=np.float32)
            return normalize_agcn(kp, kp.shape[1], select=False, centre_and_rotate=items.normalize)

        return load

    return [
        SkeletonSource(f"{path}::{name}", name, loader=loader(i), **kwargs)
        for i, name in enumerate(items.names)
    ]


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """The inputs with every folder replaced by the video and array files in it (sorted);
    files, devices and URLs as given."""
    out: List[str] = []
    for item in inputs:
        s = str(item)
        path = Path(os.path.expanduser(s))
        if not is_live(s) and path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES + (".npy", ".skeleton")
            )
            if not found:
                raise SourceError(f"{s}: a folder without video, .npy or .skeleton files")
            out += [str(p) for p in found]
        else:
            out.append(str(path) if path.exists() else s)
    return out
