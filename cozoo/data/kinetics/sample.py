"""A small generated video sample in the real Kinetics-400 on-disk layout.

With no ``data.root`` the Kinetics data module writes this sample into a cache folder and reads it
through exactly the same code path as the real dataset::

    <sample root>/
      annotations/train.csv  validate.csv  test.csv     label,youtube_id,time_start,time_end,split
      train/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4   (MPEG-4, yuv420p, 30 fps, 80×64)
      val/<label>/...
      test/<label>/...
      SAMPLE.json                                        written last: marks a complete sample

The classes are *motions*, shared by the 3 to 6 rectangles of a video: moving left or right,
rotating clockwise or counter-clockwise, growing or shrinking. Every class draws colours, sizes,
aspect ratios, orientations, positions and speeds from the same laws, and position, orientation
and size are uniformly distributed at every instant (rectangles wrap around the frame edges;
growth is a saw-tooth with a random phase), so a single frame carries no information about the
class: a frame-level model is at chance (1/6); only a model that looks at time separates them.

Everything is deterministic in ``seed``: each video draws from its own
``numpy.random.default_rng((seed, split, class, index))`` stream, and the MPEG-4 encoder gives
the same bytes for the same frames. The sample is built in a temporary folder beside the target
and renamed into place only when complete, so an interrupted generation is never mistaken for a
finished one (it is simply rebuilt on the next call).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import string
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .._cache import build_atomically, cache_root, marker_matches, write_marker

__all__ = [
    "SAMPLE_CLASSES",
    "SAMPLE_SIZES",
    "SAMPLE_VERSION",
    "SampleSpec",
    "default_cache_dir",
    "encode_mp4",
    "ensure_sample",
    "is_complete",
    "render_video",
    "sample_root",
    "write_sample",
]

log = logging.getLogger(__name__)

SAMPLE_VERSION = "v1"
#: Class names (= Kinetics ``label`` strings and class folder names). Sorted, so the class index is
#: the position in this tuple, as for any Kinetics-layout root.
SAMPLE_CLASSES: Tuple[str, ...] = (
    "growing",
    "moving left",
    "moving right",
    "rotating clockwise",
    "rotating counterclockwise",
    "shrinking",
)
assert list(SAMPLE_CLASSES) == sorted(SAMPLE_CLASSES)

#: Videos per class and split: ``name -> (train, val, test)``.
SAMPLE_SIZES: Dict[str, Tuple[int, int, int]] = {
    "tiny": (3, 2, 2),
    "small": (24, 8, 8),
    "medium": (64, 16, 16),
}

#: Split folder name -> (annotation CSV name, ``split`` column value), as in Kinetics-400.
_SPLITS: Tuple[Tuple[str, str, str], ...] = (
    ("train", "train.csv", "train"),
    ("val", "validate.csv", "val"),
    ("test", "test.csv", "test"),
)
KINETICS_CSV_HEADER: Tuple[str, ...] = ("label", "youtube_id", "time_start", "time_end", "split")
#: Bumped whenever the rendered content changes: a cached sample of another generator is rebuilt.
GENERATOR = 3
_YT_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True)
class SampleSpec:
    """Geometry of the generated videos: ``width × height`` pixels at ``fps`` frames per second,
    between ``min_frames`` and ``max_frames`` frames long."""

    width: int = 80
    height: int = 64
    fps: int = 30
    min_frames: int = 81
    max_frames: int = 96
    min_objects: int = 3
    max_objects: int = 6


def default_cache_dir() -> Path:
    """``$COZOO_CACHE/kinetics_sample/v1`` if ``COZOO_CACHE`` is set, else
    ``~/.cache/cozoo/kinetics_sample/v1``."""
    return cache_root() / "kinetics_sample" / SAMPLE_VERSION


def sample_root(
    cache_dir: Union[str, os.PathLike, None] = None, size: str = "small", seed: int = 0
) -> Path:
    """Folder of the sample of ``size`` and ``seed`` under ``cache_dir`` (default:
    :func:`default_cache_dir`)."""
    _check_size(size)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"{size}-seed{int(seed)}"


def _check_size(size: str) -> None:
    if size not in SAMPLE_SIZES:
        raise ValueError(f"unknown sample size {size!r}; choose one of {sorted(SAMPLE_SIZES)}")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
_LUMA = np.array([0.299, 0.587, 0.114])


def _soft(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    """A uniform draw as a Python float (keeps the float32 arithmetic float32)."""
    return float(rng.uniform(low, high))


def _draw_rectangle(
    frames: np.ndarray,
    colour: np.ndarray,
    cx: Union[float, np.ndarray],
    cy: Union[float, np.ndarray],
    theta: Union[float, np.ndarray],
    length: Union[float, np.ndarray],
    aspect: float,
) -> None:
    """Paint an anti-aliased rectangle into float ``frames (T, H, W, 3)``, in place, on a torus.

    ``cx, cy`` (centre, pixels), ``theta`` (angle of the long side, radians, image y axis down)
    and ``length`` (long side, pixels) are scalars or ``(T,)`` arrays; the short side is
    ``length / aspect``. Only a window around the centre is computed (wrapping around the edges).
    """
    n, h, w, _ = frames.shape
    per_frame = [np.broadcast_to(np.asarray(a, np.float32), (n,)) for a in (cx, cy, theta, length)]
    cx_t, cy_t, th_t, len_t = (a[:, None, None] for a in per_frame)
    half = float(per_frame[3].max()) / 2 * math.sqrt(1 + 1 / aspect**2) + 2  # half diagonal + AA
    bw, bh = min(w, 2 * math.ceil(half) + 1), min(h, 2 * math.ceil(half) + 1)
    xs = (np.floor(per_frame[0]).astype(np.int64)[:, None] - bw // 2 + np.arange(bw)) % w
    ys = (np.floor(per_frame[1]).astype(np.int64)[:, None] - bh // 2 + np.arange(bh)) % h
    dx = (xs[:, None, :] + 0.5 - cx_t + w / 2) % w - w / 2  # (T, 1, bw) toroidal offsets
    dy = (ys[:, :, None] + 0.5 - cy_t + h / 2) % h - h / 2  # (T, bh, 1)
    cos, sin = np.cos(th_t), np.sin(th_t)
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    alpha = _soft(np.maximum(np.abs(u) - len_t / 2, np.abs(v) - len_t / (2 * aspect)))
    index = ((np.arange(n)[:, None, None] * h + ys[:, :, None]) * w + xs[:, None, :]).ravel()
    flat = frames.reshape(n * h * w, 3)  # a view: one fancy index is faster than three
    region = flat[index]  # (T·bh·bw, 3)
    flat[index] = region + (colour.astype(np.float32) - region) * alpha.reshape(-1, 1)


def render_video(
    label: int, rng: np.random.Generator, spec: SampleSpec = SampleSpec()
) -> np.ndarray:
    """Render one video of class ``SAMPLE_CLASSES[label]``.

    Every class shows the same kind of scene: a few rectangles (each with its own random colour,
    size, aspect ratio, orientation and position, drawn on a torus so that they wrap around the
    frame edges) on a darker plain background with film grain. Only the motion depends on the
    class, and all rectangles of a video share it: they translate (left/right, each at its own
    speed, with a small random vertical drift), rotate about their centres (clockwise on screen /
    counter-clockwise; the image y axis points down), or grow/shrink in a saw-tooth with their
    own random phase. Position, orientation and size are uniformly distributed at every instant
    in every class, so a single frame carries no information about the class, while every
    rectangle carries the motion (a strong, local signal that a small 3D CNN picks up fast).

    Returns ``(T, H, W, 3)`` uint8 RGB frames; ``T`` is drawn from
    ``[spec.min_frames, spec.max_frames]``.
    """
    name = SAMPLE_CLASSES[label]
    h, w = spec.height, spec.width
    n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    t = np.arange(n, dtype=np.float32)  # (T,), in frames
    bg = rng.uniform(0, 110, 3).astype(np.float32)
    frames = np.broadcast_to(bg, (n, h, w, 3)).copy()
    l_min, l_max = 0.2 * h, 0.45 * h  # length of a rectangle's long side, in pixels
    sign = -1.0 if name.endswith(("left", "counterclockwise")) else 1.0
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        fg = rng.uniform(0, 255, 3)
        fg = (fg + (150 - fg @ _LUMA) if fg @ _LUMA < 150 else fg).clip(0, 255)
        aspect = _u(rng, 1.5, 2.5)  # long side / short side
        cx, cy = _u(rng, 0, w), _u(rng, 0, h)
        theta: Union[float, np.ndarray] = _u(rng, 0, 2 * math.pi)
        length: Union[float, np.ndarray] = _u(rng, l_min, l_max)
        if name.startswith("moving"):
            cx = cx + sign * _u(rng, 1.0, 2.0) * t  # px / frame
            cy = cy + _u(rng, -0.3, 0.3) * t
        elif name.startswith("rotating"):  # < 90° per sampled step at sampling rates <= 8
            theta = theta + sign * math.radians(_u(rng, 3.0, 6.0)) * t
        else:  # growing / shrinking: saw-tooth length, uniform at every instant
            phase = (_u(rng, 0, 1) + t / _u(rng, 30, 50)) % 1.0
            length = l_min + (l_max - l_min) * (1.0 - phase if name == "shrinking" else phase)
        _draw_rectangle(frames, fg, cx, cy, theta, length, aspect)
    frames += rng.standard_normal((n, h, w, 1), dtype=np.float32) * np.float32(4.0)  # grain
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def _video_codec() -> str:
    """FFmpeg's native MPEG-4 part 2 encoder, else libx264.

    MPEG-4 comes first because it is in every FFmpeg build and its output is byte-for-byte
    reproducible; libx264 (through PyAV 18 / FFmpeg 8) gave run-to-run different bytes for
    frames narrower than 128 pixels, which would break the seed -> identical sample promise."""
    import av

    for name in ("mpeg4", "libx264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # this FFmpeg build lacks the codec
            continue
    raise RuntimeError("PyAV can encode neither libx264 nor mpeg4")


def encode_mp4(
    path: Union[str, os.PathLike], frames: np.ndarray, fps: int = 30, codec: Optional[str] = None
) -> None:
    """Write ``(T, H, W, 3)`` uint8 RGB ``frames`` as an mp4 (yuv420p) with PyAV, with ``codec``
    (default: MPEG-4 part 2, else libx264)."""
    import av

    codec = codec or _video_codec()
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        else:
            stream.options = {"qscale": "3"}
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------------------------
# The sample
# --------------------------------------------------------------------------------------------
def _youtube_id(rng: np.random.Generator) -> str:
    return "".join(_YT_ALPHABET[i] for i in rng.integers(0, len(_YT_ALPHABET), 11))


def is_complete(root: Union[str, os.PathLike], spec: Optional[SampleSpec] = None) -> bool:
    """True iff ``root`` holds a finished sample of this generator (and of ``spec`` if given):
    the marker exists, names :data:`GENERATOR` (and ``spec``), and every file it lists is there
    with its recorded size."""
    expected: Dict[str, object] = {"generator": GENERATOR}
    if spec is not None:
        expected["spec"] = asdict(spec)
    return marker_matches(root, expected)


def _write_video(
    root: Path, seed: int, split_id: int, label: int, k: int, spec: SampleSpec
) -> Tuple[str, Tuple[str, str, int, int, str]]:
    """Render and encode one video; returns its relative path and its annotation row."""
    folder, _, split_value = _SPLITS[split_id]
    name = SAMPLE_CLASSES[label]
    rng = np.random.default_rng((int(seed), split_id, label, k))
    yt_id = _youtube_id(rng)
    start = int(rng.integers(0, 290))
    end = start + 10  # Kinetics segments are 10 s long
    rel = f"{folder}/{name}/{yt_id}_{start:06d}_{end:06d}.mp4"
    encode_mp4(root / rel, render_video(label, rng, spec), spec.fps)
    return rel, (name, yt_id, start, end, split_value)


def write_sample(
    root: Union[str, os.PathLike],
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
    *,
    on_video: Optional[Callable[[int, Path], None]] = None,
    workers: Optional[int] = None,
) -> Dict[str, int]:
    """Write the sample into the (new or empty) folder ``root``, non-atomically.

    Use :func:`ensure_sample` for the atomic, cached version. Videos are rendered and encoded by
    ``workers`` threads (default: the CPU count, at most 4); every video has its own random
    stream, so the result does not depend on the order. ``on_video(i, path)`` is called after
    each video is written (progress; tests use it to simulate an interruption). Returns the
    manifest ``{relative path: size in bytes}``.
    """
    _check_size(size)
    root = Path(root)
    jobs = [
        (split_id, label, k)
        for split_id in range(len(_SPLITS))
        for label in range(len(SAMPLE_CLASSES))
        for k in range(SAMPLE_SIZES[size][split_id])
    ]
    for folder, _, _ in _SPLITS:
        for name in SAMPLE_CLASSES:
            (root / folder / name).mkdir(parents=True, exist_ok=True)
    files: Dict[str, int] = {}
    rows: Dict[int, List[Tuple[str, str, int, int, str]]] = {i: [] for i in range(len(_SPLITS))}
    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        done = pool.map(lambda job: _write_video(root, seed, *job, spec), jobs)
        for count, ((split_id, _, _), (rel, row)) in enumerate(zip(jobs, done)):
            files[rel] = (root / rel).stat().st_size
            rows[split_id].append(row)
            if on_video is not None:
                on_video(count, root / rel)
    (root / "annotations").mkdir(exist_ok=True)
    for split_id, (_, csv_name, _) in enumerate(_SPLITS):
        rel_csv = f"annotations/{csv_name}"
        with open(root / rel_csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(KINETICS_CSV_HEADER)
            writer.writerows(rows[split_id])
        files[rel_csv] = (root / rel_csv).stat().st_size
    manifest = {
        "format": "kinetics-400 layout (generated sample)",
        "version": SAMPLE_VERSION,
        "generator": GENERATOR,
        "size": size,
        "seed": int(seed),
        "classes": list(SAMPLE_CLASSES),
        "codec": _video_codec(),
        "spec": asdict(spec),
        "files": files,
    }
    write_marker(root, manifest)
    return files


def ensure_sample(
    cache_dir: Union[str, os.PathLike, None] = None,
    size: str = "small",
    seed: int = 0,
    spec: SampleSpec = SampleSpec(),
    *,
    on_video: Optional[Callable[[int, Path], None]] = None,
) -> Path:
    """Return the root of a complete generated sample, writing it first if needed.

    The sample is written into ``<cache>/.tmp-*`` and renamed to its final name only once
    complete; a final folder without a valid ``SAMPLE.json`` (e.g. copied half-way) is rebuilt.
    Concurrent callers (e.g. DDP ranks) are safe: the first rename wins, the others use it.
    """
    root = sample_root(cache_dir, size, seed)
    t0 = time.perf_counter()
    files = build_atomically(
        root,
        lambda tmp: write_sample(tmp, size, seed, spec, on_video=on_video),
        lambda folder: is_complete(folder, spec),
        logger=log,
    )
    if files is not None:
        log.warning(
            "generated the Kinetics-layout sample (%d videos, %d classes) in %.1f s at %s",
            sum(1 for k in files if k.endswith(".mp4")),
            len(SAMPLE_CLASSES),
            time.perf_counter() - t0,
            root,
        )
    return root
